"""Listing pages (category pages, the home page, the feed) into article references.

Titles are written raw on these pages, so a title can hold ``<`` or quotes; we therefore read
only the ``href`` attributes the generator wrote, never the surrounding markup's structure.
"""

from __future__ import annotations

import html
import re

from common.links import post_categories, to_site_url
from common.records import ArticleRef
from tasks.identity import canonical_info_code, preference, raw_id_from_post_url
from tasks.markup import body_start

_LINK = re.compile(r"""<a\s[^>]*?href=["']([^"'<>]+)["'][^>]*>""", re.IGNORECASE)
_FEED_LINK = re.compile(r"""<link\s[^>]*?href=["']([^"'<>]+)["']""", re.IGNORECASE)


def parse_listing(page: str, page_url: str, site: str, category: str | None) -> list[ArticleRef]:
    """Every post link on a category page or the home page, in page order, without repeats.

    ``category`` is the slug whose page this is; None for pages that mix categories (home),
    where the category comes from the post URL.
    """
    refs: dict[str, ArticleRef] = {}
    for match in _LINK.finditer(page[body_start(page) :]):
        ref = _make_ref(html.unescape(match.group(1)), page_url, site, category)
        if ref is not None and ref.url not in refs:
            refs[ref.url] = ref
    return list(refs.values())


_HOME_GROUP = re.compile(
    r"<h2\b[^>]*>(.*?)</h2>(.*?)(?=<h2\b|</section>|$)", re.DOTALL | re.IGNORECASE
)


def parse_home_groups(page: str, page_url: str, site: str) -> list[tuple[str, list[ArticleRef]]]:
    """The home page as (tag, its newest posts) groups: the site shows 5 per tag, newest first."""
    groups = []
    for match in _HOME_GROUP.finditer(page[body_start(page) :]):
        refs = parse_listing(match.group(2), page_url, site, None)
        if refs:
            groups.append((html.unescape(match.group(1)).strip(), refs))
    return groups


def parse_feed(xml: str, page_url: str, site: str) -> list[ArticleRef]:
    """Post links of the Atom feed (``<link rel="alternate" href=…>`` of each entry)."""
    refs: dict[str, ArticleRef] = {}
    for match in _FEED_LINK.finditer(xml):
        ref = _make_ref(html.unescape(match.group(1)), page_url, site, None)
        if ref is not None and ref.url not in refs:
            refs[ref.url] = ref
    return list(refs.values())


def _make_ref(href: str, page_url: str, site: str, category: str | None) -> ArticleRef | None:
    url = to_site_url(href, page_url, site)
    if url is None:
        return None
    cats = post_categories(url)
    raw = raw_id_from_post_url(url)
    code = canonical_info_code(raw)
    if cats is None or raw is None or code is None:
        return None
    return ArticleRef(
        url=url,
        info_code=code,
        info_code_raw=raw,
        category=category if category is not None else " ".join(cats),
        listed_on=page_url,
    )


def dedupe_refs(refs: list[ArticleRef]) -> tuple[list[ArticleRef], int]:
    """One reference per info_code, preferring the outlet's ``NW`` form; returns (kept, dropped)."""
    best: dict[str, ArticleRef] = {}
    for ref in refs:
        current = best.get(ref.info_code)
        if current is None or preference(ref.info_code_raw) < preference(current.info_code_raw):
            best[ref.info_code] = ref
    return list(best.values()), len(refs) - len(best)
