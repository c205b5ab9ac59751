"""Extraction of one post page into an ``Article``.

The site's layout writes the post's raw HTML into ``og:description`` unescaped, so the first
``"`` of the post spills the rest into the document. Generic extraction then reads that junk
(the infoCode URL, ``tags: …">``). We therefore cut the real content region (the last
``<section>`` of the page, inside ``div.wrapper``), drop the site's chrome from it (timestamp,
``<h1>``, source link, back-links, tags line, hidden spacers) and hand only the rest to
trafilatura. Whole-page trafilatura is kept as a recorded fallback for pages without a region.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import json
import logging
import re
from functools import lru_cache
from importlib.metadata import version

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import use_config

from common.links import slug_from_category_url, to_site_url
from common.records import Article
from tasks.identity import canonical_info_code, raw_id_from_post_url, raw_id_from_source_url
from tasks.markup import body_start

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
TRAFILATURA_VERSION = version("trafilatura")
EXTRACTOR = f"finews-region/1+trafilatura/{TRAFILATURA_VERSION}"
SITE_TITLE_SUFFIX = " | 金融消息"
EMNEWS_TAG = "东财滚动新闻"

_SECTION_OPEN = re.compile(r"<section\b[^>]*>", re.IGNORECASE)
_SECTION_CLOSE = re.compile(r"</section\s*>", re.IGNORECASE)
_STAMP = re.compile(
    r"<small>\s*\(GMT\+8[^)]*\)\s*(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})\s*</small>"
)
_H1 = re.compile(r"<h1>(.*?)</h1>", re.DOTALL)
_META_PUBLISHED = re.compile(
    r'<meta property="article:published_time" content="([^"]+)"\s*/?>', re.IGNORECASE
)
_JSON_LD = re.compile(
    r'<script type="application/ld\+json">\s*(\{.*?\})\s*</script>', re.DOTALL | re.IGNORECASE
)
_TITLE_TAG = re.compile(r"<title>(.*?)</title>", re.DOTALL | re.IGNORECASE)
_TAGS_LINE = re.compile(r"<small>\s*tags:\s*(.*?)</small>", re.DOTALL)
_EM = re.compile(r"<em>(.*?)</em>", re.DOTALL)
_MEDIA = re.compile(r"^\s*[（(]\s*文章来源[：:]\s*(.+?)\s*[）)]\s*$", re.MULTILINE)
_SOURCE_LINK_HOSTS = ("eastmoney.com", "finews.zning.xyz", "NewsShare.html")
_BACK_LINK_TEXT = re.compile(r"^\s*返回")
# A post page names itself in the head even when its <section> is gone: jekyll-seo-tag writes
# og:type "article", article:published_time and a JSON-LD BlogPosting. Home, category and
# 404 pages have none of them.
_POST_MARKERS = re.compile(
    r'<meta property="og:type" content="article"|"@type":\s*"BlogPosting"'
    r'|<meta property="article:published_time"',
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_DOCUMENT = (
    '<html><head><meta charset="utf-8"><title>post</title></head>'
    "<body><article>{}</article></body></html>"
)
_BLOCKS = ("p", "div", "blockquote", "li", "h2", "h3", "h4", "h5", "h6", "tr", "center", "pre")

# trafilatura reports pages it rejects at ERROR level; those are our recorded failures, not errors.
for _name in ("trafilatura", "htmldate", "courlan", "justext"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class ExtractionError(ValueError):
    """The page holds no recognisable article (empty, truncated, not a post)."""


@lru_cache(maxsize=1)
def _trafilatura_config():  # type: ignore[no-untyped-def]
    """Explicit settings: no size thresholds (one-line posts are real), no timeout signal."""
    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    config.set("DEFAULT", "MIN_EXTRACTED_COMM_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_COMM_SIZE", "1")
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
    return config


def content_region(page: str) -> str | None:
    """The inner HTML of the page's ``<section>``, or None if absent: from the first opening
    after the real ``<body>`` (the head's junk is before it) to the last closing, so a
    ``<section>`` inside a post's own markup stays inside the region."""
    opening = _SECTION_OPEN.search(page, body_start(page))
    if opening is None:
        return None
    closes = list(_SECTION_CLOSE.finditer(page, opening.end()))
    return page[opening.end() : closes[-1].start()] if closes else None


def parse_published_at(page: str, region: str | None) -> dt.datetime | None:
    """The page's own timestamp to the second, in +08:00; then the head's metadata."""
    if region is not None and (match := _STAMP.search(region)):
        try:
            return dt.datetime.fromisoformat(f"{match[1]}T{match[2]}").replace(tzinfo=SHANGHAI)
        except ValueError:
            pass
    candidates = [m[1] for m in _META_PUBLISHED.finditer(page)]
    for match in _JSON_LD.finditer(page):
        try:
            data = json.loads(match[1])
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("datePublished"), str):
            candidates.append(data["datePublished"])
    for text in candidates:
        try:
            parsed = dt.datetime.fromisoformat(text.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=SHANGHAI)
            return parsed.astimezone(SHANGHAI)
        except (ValueError, OverflowError):
            continue
    return None


def published_at_source(region: str | None, published_at: dt.datetime | None) -> str:
    """Where the timestamp came from: ``page`` (the post's own line), ``head``, or ``missing``.

    A row whose page shows no usable date is kept with a null ``published_at`` and this flag.
    """
    if published_at is None:
        return "missing"
    if region is not None and (match := _STAMP.search(region)):
        with contextlib.suppress(ValueError):
            stamp = dt.datetime.fromisoformat(f"{match[1]}T{match[2]}")
            if stamp.replace(tzinfo=SHANGHAI) == published_at:
                return "page"
    return "head"


def parse_title(page: str, region: str | None) -> str | None:
    """The raw ``<h1>`` of the region (titles are written unescaped), else the head's headline."""
    if region is not None and (match := _H1.search(region)):
        title = match[1].strip()
        if "<" in title and re.search(r"<[a-zA-Z/!]", title):
            title = lxml.html.fragment_fromstring(title, create_parent="div").text_content()
        if title.strip():
            return title.strip()
    for match in _JSON_LD.finditer(page):
        try:
            data = json.loads(match[1])
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("headline"), str) and data["headline"]:
            return html.unescape(data["headline"]).strip() or None
    if match := _TITLE_TAG.search(page):
        title = html.unescape(match[1]).strip().removesuffix(SITE_TITLE_SUFFIX.strip()).strip()
        return title.removesuffix("|").strip() or None
    return None


def _is_source_link(paragraph: lxml.html.HtmlElement) -> bool:
    text = paragraph.text_content().strip()
    if text == "<>":
        return True
    links = paragraph.findall(".//a")
    if len(links) != 1:
        return False
    href = links[0].get("href", "")
    return text == href.strip() and text.startswith("http")


def _is_back_links(paragraph: lxml.html.HtmlElement) -> bool:
    links = paragraph.findall(".//a")
    return bool(links) and all(_BACK_LINK_TEXT.match(a.text_content() or "") for a in links)


def _clean_region(region: str) -> tuple[etree._Element, str | None, str | None, list[str]]:
    """Strip the site's chrome out of the region; return (tree, source_url, category link, tags)."""
    root = lxml.html.fragment_fromstring(region, create_parent="div")
    source_url: str | None = None
    category_link: str | None = None
    tags: list[str] = []
    for element in list(root.iterchildren()):
        if not isinstance(element.tag, str):
            continue
        if element.tag == "small":
            text = element.text_content()
            if text.strip().startswith("tags:"):
                tags = [em.text_content().strip() for em in element.findall(".//em")]
            element.drop_tree()
        elif element.tag == "h1":
            element.drop_tree()
        elif element.tag == "p" and _is_source_link(element):
            links = element.findall(".//a")
            source_url = links[0].get("href") if links else None
            element.drop_tree()
        elif element.tag == "p" and _is_back_links(element):
            for link in element.findall(".//a"):
                if slug_from_category_url(link.get("href", "")) is not None:
                    category_link = link.get("href")
            element.drop_tree()
    for hidden in root.xpath(".//*[contains(translate(@style,' ',''),'display:none')]"):
        hidden.drop_tree()
    # Stock names are links; unwrapping keeps trafilatura's link-density filter from
    # discarding paragraphs that mention many of them.
    etree.strip_tags(root, "a", "span", "font")
    return root, source_url, category_link, tags


def _run_trafilatura(document: str | etree._Element) -> str:
    text = trafilatura.extract(
        document,
        config=_trafilatura_config(),
        output_format="txt",
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        favor_recall=True,
        deduplicate=False,
        fast=True,
    )
    return _BLANK_LINES.sub("\n", text or "").strip()


def _take_digest(root: etree._Element) -> str | None:
    """Remove and return the leading blockquote (the emnews digest), if the post opens with one."""
    for element in root.iterchildren():
        if not isinstance(element.tag, str):
            continue
        if element.tag != "blockquote":
            return None
        blocks = element.findall(".//p") or [element]
        text = "\n".join(
            " ".join(block.text_content().split())
            for block in blocks
            if block.text_content().strip()
        )
        element.drop_tree()
        return text or None
    return None


def _paragraph_text(root: etree._Element) -> str:
    """Safety net when trafilatura keeps nothing of a non-empty region: text per block."""
    lines = []
    for element in root.iter(*_BLOCKS):
        if element.find(".//p") is None and (text := " ".join(element.text_content().split())):
            lines.append(text)
    if not lines:
        lines = [" ".join(root.text_content().split())]
    return "\n".join(line for line in lines if line).strip()


def content_hash(title: str | None, body: str) -> str:
    return hashlib.sha256(f"{title or ''}\x00{body}".encode()).hexdigest()


def extract_article(
    page: str,
    url: str,
    *,
    fetched_at: dt.datetime,
    category: str,
    site: str,
) -> Article:
    """Turn one post page into an Article; raise ExtractionError when it holds no article."""
    page = _CONTROL.sub("", page)
    region = content_region(page)
    published_at = parse_published_at(page, region)
    title = parse_title(page, region)
    source_url: str | None = None
    category_link: str | None = None
    tags: list[str] = []
    digest: str | None = None
    if region is not None and _STAMP.search(region):
        root, source_url, category_link, tags = _clean_region(region)
        digest = _take_digest(root)
        inner = lxml.html.tostring(root, encoding="unicode")
        body = _run_trafilatura(_DOCUMENT.format(inner))
        path = "region"
        if not body and root.text_content().strip():
            body = _paragraph_text(root)
            path = "region-text"
        if digest:
            # emnews repeats the digest as the first paragraph; trafilatura drops such a
            # repeat, so the digest is taken out first and put back in its place.
            body = f"{digest}\n{body}".strip()
    else:
        if not _POST_MARKERS.search(page):
            raise ExtractionError("not a post page (no timestamp, no article metadata)")
        body = _run_trafilatura(page)
        path = "whole-page"
        tags = (
            [m.strip() for m in _EM.findall(_TAGS_LINE.findall(page)[-1])]
            if _TAGS_LINE.search(page)
            else []
        )
    if not body:
        raise ExtractionError("no article text found")
    raw = raw_id_from_post_url(url) or raw_id_from_source_url(source_url)
    code = canonical_info_code(raw)
    if code is None or raw is None:
        raise ExtractionError("no news id in the URL or the source link")
    media = _MEDIA.findall(body)
    outlet_tags = [tag.removesuffix("新闻") for tag in tags if tag and tag != EMNEWS_TAG]
    source = media[-1] if media else (outlet_tags[0] if outlet_tags else None)
    category_page = to_site_url(category_link, url, site) if category_link else None
    return Article(
        info_code=code,
        info_code_raw=raw,
        url=url,
        category=category,
        title=title,
        published_at=published_at,
        published_at_source=published_at_source(region, published_at),
        source=source or None,
        digest=digest,
        body=body,
        source_url=(source_url or "").strip() or None,
        content_hash=content_hash(title, body),
        fetched_at=fetched_at,
        extractor=EXTRACTOR,
        extraction_path=path,
        category_page=category_page,
        tags=tuple(tags),
    )
