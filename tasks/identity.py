"""The article's identity: one news id, ``NW<digits>`` in media feeds, ``<digits>`` in emnews."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

_RAW_ID = re.compile(r"^(?:NW)?\d{8,32}$", re.ASCII)
_EASTMONEY_NEWS = re.compile(r"/news/\d+,(\d{8,32})\.html$", re.ASCII)


def canonical_info_code(raw: str | None) -> str | None:
    """Digits only: ``NW202205262391921712`` and ``202205262391921712`` are one article."""
    if raw is None:
        return None
    raw = raw.strip()
    if not _RAW_ID.match(raw):
        return None
    return raw.removeprefix("NW")


def raw_id_from_post_url(url: str) -> str | None:
    """The post URL ends in ``/<id>.html``; return that id if it looks like a news id."""
    try:
        name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    except ValueError:
        return None
    if not name.endswith(".html"):
        return None
    raw = name[: -len(".html")]
    return raw if _RAW_ID.match(raw) else None


def raw_id_from_source_url(url: str | None) -> str | None:
    """The original link carries the id too: ``infoCode=NW…`` or eastmoney ``news/…,<id>.html``."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for value in parse_qs(parts.query).get("infoCode", []):
        if _RAW_ID.match(value):
            return value
    match = _EASTMONEY_NEWS.search(parts.path)
    return match.group(1) if match else None


def preference(raw: str) -> tuple[int, str]:
    """Sort key choosing which form to fetch when both are listed: the outlet's own (NW) form."""
    return (0 if raw.startswith("NW") else 1, raw)
