"""Turn fetched bytes into text exactly once, by rule rather than by guess.

The site serves UTF-8, but headers lie (``charset=ISO-8859-1`` on UTF-8 bytes is common) and old
pages are GBK. requests' ``apparent_encoding``/``.text`` guess per response and produce mojibake
that then lands in the warehouse, so every body is decoded here instead, in a fixed order:

1. a byte-order mark (UTF-8, UTF-16) wins;
2. strict UTF-8, which is self-validating: non-UTF-8 text almost never decodes as UTF-8;
3. the charset declared in the Content-Type header, then in a ``<meta>`` in the first 4 KB,
   if Python knows it and it decodes strictly (GB2312/GBK are read as their superset GB18030);
4. strict GB18030;
5. UTF-8 with replacement characters, so decoding never fails.

Single-byte "default" declarations (ISO-8859-1, windows-1252) decode almost any bytes, so
they are tried only after GB18030: on a Chinese site they are a server default, not a statement.
NUL and other C0 control characters (except tab, LF, CR) are removed, since they break XML, HTML
parsers and database text columns.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.records import FetchResult

_SNIFF_BYTES = 4096
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s;"',]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.I)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

_ALIASES = {
    "x-gbk": "gb18030",
    "x-gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "windows-936": "gb18030",
    "x-gb18030": "gb18030",
    "csgb2312": "gb18030",
}
# Python codec names (after codecs.lookup) that are read as GB18030, their strict superset.
_AS_GB18030 = frozenset({"gb2312", "gbk", "gb18030"})
# Codecs that accept (nearly) any byte sequence, so "decodes strictly" proves nothing.
_PERMISSIVE = frozenset({"iso8859-1", "cp1252"})
# A <meta> is ASCII text, so a meta naming a 16/32-bit encoding is wrong (HTML spec: ignore it).
_WIDE = ("utf-16", "utf-32")

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_html(content: bytes, content_type: str | None = None) -> str:
    """Decode a response body by BOM, UTF-8, declared charset, GB18030, then lossy UTF-8."""
    return _strip_controls(_decode(bytes(content), content_type))


def page_text(result: FetchResult) -> str:
    """A fetched page's text, decoded by the rules above, never by a guessed charset."""
    return decode_html(result.content, result.content_type)


def declared_charsets(content: bytes, content_type: str | None = None) -> list[str]:
    """Python codec names declared by the header, then by ``<meta>``; unknown names dropped."""
    found: list[str] = []
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match:
            _add_codec(found, match.group(1), from_meta=False)
    match = _META_CHARSET.search(content[:_SNIFF_BYTES])
    if match:
        _add_codec(found, match.group(1).decode("ascii", "ignore"), from_meta=True)
    return found


def _decode(content: bytes, content_type: str | None) -> str:
    if not content:
        return ""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            if codec == "utf-8":
                return content[len(bom) :].decode("utf-8", errors="replace")
            return content.decode(codec, errors="replace")  # the utf-16 codec eats its BOM
    text = _strict(content, "utf-8")
    if text is not None:
        return text
    declared = declared_charsets(content, content_type)
    for codec in [c for c in declared if c not in _PERMISSIVE] + ["gb18030"]:
        text = _strict(content, codec)
        if text is not None:
            return text
    for codec in [c for c in declared if c in _PERMISSIVE]:
        text = _strict(content, codec)
        if text is not None:
            return text
    return content.decode("utf-8", errors="replace")


def _add_codec(found: list[str], label: str, *, from_meta: bool) -> None:
    label = label.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return
    if name in _AS_GB18030:
        name = "gb18030"
    if from_meta and name.startswith(_WIDE):
        return
    if name not in found:
        found.append(name)


def _strict(content: bytes, codec: str) -> str | None:
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        # LookupError: a name codecs.lookup knows but that is not a text codec (e.g. base64).
        return None


def _strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)
