"""Property tests: listing and extraction on mutated replica pages and on random text.

Real pages of the replica (post pages, category pages, home, ``/emnews/``, the feed) are cut,
spliced, duplicated and sprinkled with junk (U+FFFD, control characters, stray ``<`` ``"``,
random tags, the site's own fragments, non-ASCII digits); random text and random sequences of
fragments are tried too. The parsers must never raise, and whatever they return must be well
formed. ``extract_article`` may refuse a page, but only with ``ExtractionError``: any other
exception is a bug. Failures print the page's path and the edits, not the whole page.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from common.records import Article, ArticleRef
from replica import Post, generate_posts, render_site
from replica.render import category_key
from tasks.extraction import ExtractionError, extract_article
from tasks.identity import raw_id_from_post_url
from tasks.listing import dedupe_refs, parse_feed, parse_listing

SITE = "https://finews.withounder.com"
FETCHED_AT = dt.datetime(2022, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
POST_URL = SITE + "/emnews/2022/05/31/202205312398034850.html"
STAMP = "<small>(GMT+8, Asia/Shanghai, CST) 2022-05-31 10:20:30</small>"
ASCII_DIGITS = re.compile(r"[0-9]+")
FUZZ = settings(max_examples=60, deadline=None)


@cache
def posts() -> tuple[Post, ...]:
    return tuple(generate_posts(60, seed=5))  # 60 posts: every forced shape occurs


@cache
def pages() -> dict[str, str]:
    return {path: body.decode("utf-8") for path, body in render_site(list(posts())).items()}


@cache
def post_by_path() -> dict[str, Post]:
    return {post.url_path: post for post in posts()}


@cache
def listing_cases() -> dict[str, str | None]:
    """Path → category slug of the home page (None), /emnews/ and every category page."""
    cases: dict[str, str | None] = {"/": None, "/emnews/": "emnews"}
    for category in sorted({post.category for post in posts()}):
        cases[category_key(category)] = category
    return cases


# --- mutations ----------------------------------------------------------------------------------

TAG_NAMES = (
    "p", "section", "small", "h1", "a", "span", "div", "blockquote", "script", "style", "em",
    "body", "head", "html", "title", "meta", "link", "center", "br", "li", "ul", "strong", "img",
)  # fmt: skip
SNIPPETS = (
    "<section>",
    "</section>",
    "<small>(GMT+8, Asia/Shanghai, CST) 2022-05-31 10:20:30</small>",
    "<small>(GMT+8, Asia/Shanghai, CST) 2022-19-31 10:20:30</small>",
    "<small>tags: <em>东财滚动新闻</em></small>",
    "<h1>",
    "</h1>",
    '<a href="',
    '<a href="/emnews/2022/05/31/202205312398034850.html">',
    '<link href="//finews.withounder.com/x/2022/05/31/NW202205312398034850.html" />',
    '<p><a href="http://finance.eastmoney.com/news/1,202205312398034850.html">x</a></p>',
    '<p style="display:none">',
    "<blockquote>",
    "<p>&lt;&gt;</p>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    '<script type="application/ld+json">',
    "</script>",
    "<body>",
    "&",
    "&amp;",
    "&#0;",
    "&#xD800;",
    "http://",
    "//",
)
SPECIAL_CHARS = (
    "\ufffd\x00\x01\x08\x0b\x0c\x1b\x7f\x85\u2028\ufeff<>\"'&%#?/\\\r\n\t 　"
    "٣２"  # non-ASCII digits: an id must still be ASCII digits
    "[]／﹫℀"  # malformed hosts for urlsplit (brackets, NFKC forms of / @ :)
)


def junk() -> st.SearchStrategy[str]:
    tags = st.builds(
        lambda slash, name, attr: f"<{slash}{name}{attr}>",
        st.sampled_from(["", "/"]),
        st.sampled_from(TAG_NAMES),
        st.sampled_from(["", ' class="x"', ' href="', " style='display:none'", ' a="<"']),
    )
    anything = st.characters(exclude_categories=("Cs",))
    return st.one_of(
        st.text(alphabet=st.sampled_from(SPECIAL_CHARS), min_size=1, max_size=4),
        st.text(alphabet=anything, min_size=1, max_size=12),
        st.sampled_from(SNIPPETS),
        tags,
    )


class Mutated:
    """A replica page after random edits; the repr names the page and the edits, not the text."""

    def __init__(self, path: str, edits: list[str], text: str) -> None:
        self.path = path
        self.edits = tuple(edits)
        self.text = text

    def __repr__(self) -> str:
        return f"Mutated(path={self.path!r}, edits={self.edits!r}, len(text)={len(self.text)})"


@st.composite
def mutated(draw: st.DrawFn, path: str) -> Mutated:
    """Apply one to six random edits: truncate, delete, duplicate, insert or replace a slice."""
    text = pages()[path]
    edits: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        size = len(text)
        op = draw(st.sampled_from(["truncate", "delete", "duplicate", "insert", "replace"]))
        i = draw(st.integers(min_value=0, max_value=size))
        j = draw(st.integers(min_value=i, max_value=min(size, i + 2000)))
        if op == "truncate":
            text, edit = text[:i], f"text[:{i}]"
        elif op == "delete":
            text, edit = text[:i] + text[j:], f"del text[{i}:{j}]"
        elif op == "duplicate":
            text, edit = text[:j] + text[i:j] + text[j:], f"dup text[{i}:{j}]"
        else:
            bits = draw(junk())
            k = i if op == "insert" else j
            text, edit = text[:i] + bits + text[k:], f"text[{i}:{k}] = {bits!r}"
        edits.append(edit)
    return Mutated(path, edits, text)


@st.composite
def mutated_links(draw: st.DrawFn, path: str) -> Mutated:
    """Junk aimed at the links themselves: inserted just inside random ``href="…"``."""
    text = pages()[path]
    starts = [m.end() for m in re.finditer(r'href="', text)]
    edits: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = min(len(text), draw(st.sampled_from(starts)) + draw(st.integers(0, 60)))
        bits = draw(junk())
        text = text[:at] + bits + text[at:]
        edits.append(f"text[{at}:{at}] = {bits!r}")
    return Mutated(path, edits, text)


def post_paths() -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(p.url_path for p in posts()))


def listing_paths() -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(listing_cases()))


# --- properties ---------------------------------------------------------------------------------


def check_refs(refs: list[ArticleRef], page_url: str) -> None:
    site = urlsplit(SITE)
    assert len({ref.url for ref in refs}) == len(refs)
    for ref in refs:
        parts = urlsplit(ref.url)
        assert (parts.scheme, parts.netloc) == (site.scheme, site.netloc), ref.url
        assert ASCII_DIGITS.fullmatch(ref.info_code), ref
        assert ref.info_code_raw in {ref.info_code, "NW" + ref.info_code}, ref
        assert raw_id_from_post_url(ref.url) == ref.info_code_raw, ref
        assert ref.category.strip(), ref
        assert ref.listed_on == page_url
    kept, dropped = dedupe_refs(refs)
    assert len(kept) + dropped == len(refs)
    assert len({ref.info_code for ref in kept}) == len(kept)
    assert {ref.info_code for ref in kept} == {ref.info_code for ref in refs}
    for ref in kept:
        assert ref in refs
        if any(r.info_code == ref.info_code and r.info_code_raw.startswith("NW") for r in refs):
            assert ref.info_code_raw.startswith("NW")


def check_article(article: Article, url: str) -> None:
    assert isinstance(article, Article)
    assert article.body.strip(), "an Article must have a body"
    assert ASCII_DIGITS.fullmatch(article.info_code), article.info_code
    assert article.info_code_raw in {article.info_code, "NW" + article.info_code}
    assert article.url == url
    if article.published_at is not None:
        assert article.published_at.tzinfo is not None
        assert article.published_at.utcoffset() is not None
    assert article.title is None or isinstance(article.title, str)
    assert article.extraction_path in {"region", "region-text", "whole-page"}
    assert "trafilatura/2.3.1" in article.extractor
    assert re.fullmatch(r"[0-9a-f]{64}", article.content_hash)
    if article.category_page is not None:
        assert urlsplit(article.category_page).netloc == urlsplit(SITE).netloc


def extract_or_refuse(page: str, url: str, category: str) -> Article | None:
    """The article, or None when the page was refused with ExtractionError (and only that)."""
    try:
        article = extract_article(page, url, fetched_at=FETCHED_AT, category=category, site=SITE)
    except ExtractionError:
        return None
    check_article(article, url)
    return article


def test_unmutated_pages_are_the_baseline() -> None:
    """The properties hold on the pages as rendered, and say something there."""
    for path, category in listing_cases().items():
        refs = parse_listing(pages()[path], SITE + path, SITE, category)
        check_refs(refs, SITE + path)
        assert refs or " " in (category or ""), path  # a spaced category's page lists nothing
    feed_refs = parse_feed(pages()["/feed.xml"], SITE + "/feed.xml", SITE)
    check_refs(feed_refs, SITE + "/feed.xml")
    assert len(feed_refs) == 10
    for post in posts():
        article = extract_or_refuse(pages()[post.url_path], SITE + post.url_path, post.category)
        assert article is not None
        assert article.info_code_raw == post.id_raw


@FUZZ
@given(page=listing_paths().flatmap(mutated))
def test_parse_listing_on_mutated_listing_pages(page: Mutated) -> None:
    url = SITE + page.path
    check_refs(parse_listing(page.text, url, SITE, listing_cases()[page.path]), url)


@FUZZ
@given(page=listing_paths().flatmap(mutated_links))
def test_parse_listing_on_mutated_links(page: Mutated) -> None:
    url = SITE + page.path
    check_refs(parse_listing(page.text, url, SITE, listing_cases()[page.path]), url)


@FUZZ
@given(feed=mutated("/feed.xml"))
def test_parse_feed_on_mutated_feed(feed: Mutated) -> None:
    url = SITE + "/feed.xml"
    check_refs(parse_feed(feed.text, url, SITE), url)


@FUZZ
@given(feed=mutated_links("/feed.xml"))
def test_parse_feed_on_mutated_links(feed: Mutated) -> None:
    url = SITE + "/feed.xml"
    check_refs(parse_feed(feed.text, url, SITE), url)


@FUZZ
@given(page=post_paths().flatmap(mutated))
def test_listing_parsers_on_mutated_post_pages(page: Mutated) -> None:
    check_refs(parse_listing(page.text, SITE + "/", SITE, None), SITE + "/")
    check_refs(parse_feed(page.text, SITE + "/feed.xml", SITE), SITE + "/feed.xml")


@FUZZ
@given(text=st.text(max_size=3000), category=st.one_of(st.none(), st.text(max_size=20)))
@example(text='<body><a href="/emnews/2022/05/31/202205312398034850.html">', category=None)
@example(
    text='<feed><link href="//finews.zning.me/a b/2022/05/31/NW2022053123.html"/>', category=""
)
def test_listing_parsers_on_random_text(text: str, category: str | None) -> None:
    url = SITE + "/"
    check_refs(parse_listing(text, url, SITE, category or None), url)
    check_refs(parse_feed(text, url, SITE), url)


@FUZZ
@given(page=post_paths().flatmap(mutated))
def test_extract_article_on_mutated_post_pages(page: Mutated) -> None:
    post = post_by_path()[page.path]
    article = extract_or_refuse(page.text, SITE + post.url_path, post.category)
    if article is not None:
        assert article.info_code == post.info_code  # the URL names the id


@FUZZ
@given(page=post_paths().flatmap(mutated_links))
def test_extract_article_on_mutated_links(page: Mutated) -> None:
    """Junk inside the source link, the back-links, stock links and the head's links."""
    post = post_by_path()[page.path]
    article = extract_or_refuse(page.text, SITE + post.url_path, post.category)
    if article is not None:
        assert article.info_code == post.info_code


@FUZZ
@given(page=post_paths().flatmap(mutated))
def test_extract_article_without_id_in_url(page: Mutated) -> None:
    """A URL without an id makes the (mutated) source link the only place for it."""
    post = post_by_path()[page.path]
    extract_or_refuse(page.text, SITE + "/emnews/2022/05/31/renamed.html", post.category)


@FUZZ
@given(text=st.text(max_size=3000))
@example(text="")
@example(text="\x00")
@example(text="<section><small>(GMT+8, x) 2022-05-31 10:20:30</small></section>")
@example(text="<section><small>(GMT+8, x) 2022-05-31 10:20:30</small><p>\x00</p></section>")
@example(text="<section><small>(GMT+8, x) 2022-05-31 10:20:30</small><h1>a<b\x01</h1></section>")
def test_extract_article_on_random_text(text: str) -> None:
    extract_or_refuse(text, POST_URL, "emnews")


@FUZZ
@given(parts=st.lists(junk(), max_size=40))
def test_extract_article_on_random_fragments(parts: list[str]) -> None:
    """Random sequences of the site's own fragments (stamps, sections, links) and junk."""
    text = "".join(parts)
    extract_or_refuse(text, POST_URL, "emnews")
    extract_or_refuse(text, SITE + "/emnews/2022/05/31/renamed.html", "emnews")
    check_refs(parse_listing(text, SITE + "/", SITE, None), SITE + "/")
    check_refs(parse_feed(text, SITE + "/feed.xml", SITE), SITE + "/feed.xml")


@FUZZ
@given(page=st.sampled_from(["/", "/emnews/", "/feed.xml", "/404.html"]).flatmap(mutated))
def test_extract_article_on_mutated_non_post_pages(page: Mutated) -> None:
    extract_or_refuse(page.text, POST_URL, "emnews")


# --- regressions: inputs the fuzzing found ------------------------------------------------------


def test_listing_refuses_non_ascii_digit_ids() -> None:
    page = (
        '<body><a href="/emnews/2022/05/31/２０２２０５３１２３９８０３４８５０.html">x</a>'
        '<a href="/emnews/2022/06/01/NW٢٠٢٢٠٥٣١٢٣٩٨٠٣٤٨٥٠.html">x</a>'
    )
    assert parse_listing(page, SITE + "/", SITE, None) == []


def test_extraction_refuses_non_ascii_digit_ids() -> None:
    url = SITE + "/emnews/2022/05/31/٢٠٢٢٠٥٣١٢٣٩٨٠٣٤٨٥٠.html"
    assert extract_or_refuse(f"<section>{STAMP}<p>正文。</p></section>", url, "emnews") is None


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-05:00"], ids=["min", "max"]
)
def test_extraction_survives_out_of_range_head_dates(stamp: str) -> None:
    page = f'<meta property="article:published_time" content="{stamp}" /><p>正文。</p>'
    article = extract_or_refuse(page, POST_URL, "emnews")
    assert article is not None
    assert article.published_at is None


def test_extraction_survives_deeply_nested_json_ld() -> None:
    nested = "[" * 100_000 + "]" * 100_000
    head = '<meta property="og:type" content="article" />'
    page = f'{head}<script type="application/ld+json">{{"a": {nested}}}</script><p>正文。</p>'
    assert extract_or_refuse(page, POST_URL, "emnews") is not None
    assert extract_or_refuse(page.replace(head, ""), POST_URL, "emnews") is None, "not a post"


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x1f", "\x7f"], ids=repr)
def test_extraction_survives_control_characters_next_to_dropped_chrome(char: str) -> None:
    """lxml refuses to set a text holding a control character, which drop_tree does when it
    joins the tail of a dropped element (the stamp, the ``<h1>``, a back-link) to its neighbour."""
    page = f"<section>{STAMP}{char}<h1>标题</h1>{char}<p>正文。</p><p>{char}</p></section>"
    article = extract_or_refuse(page, POST_URL, "emnews")
    assert article is not None
    assert article.body == "正文。"
    assert article.title == "标题"


# Links with a malformed host (once a ValueError escaping urlsplit) are skipped, not fatal.

BROKEN_HOSTS = {
    "open-bracket": "//[finews.withounder.com",
    "close-bracket": "https://]finews.withounder.com",
    "nfkc-slash": "//finews.withounder.com／",
    "nfkc-at": "//finews.withounder.com﹫",
}


@pytest.mark.parametrize("host", list(BROKEN_HOSTS.values()), ids=list(BROKEN_HOSTS))
def test_listing_survives_one_href_with_a_broken_host(host: str) -> None:
    """One bad link must not lose the whole listing page (parse_listing raises ValueError)."""
    page = (
        '<body><a href="/emnews/2022/05/31/202205312398034850.html">ok</a>'
        f'<a href="{host}/emnews/2022/05/31/202205312398034851.html">x</a>'
    )
    refs = parse_listing(page, SITE + "/", SITE, None)
    assert [r.info_code for r in refs] == ["202205312398034850"]
    feed = page.replace("<a ", "<link ")
    assert [r.info_code for r in parse_feed(feed, SITE + "/feed.xml", SITE)] == [refs[0].info_code]


@pytest.mark.parametrize("host", list(BROKEN_HOSTS.values()), ids=list(BROKEN_HOSTS))
def test_extraction_survives_a_back_link_with_a_broken_host(host: str) -> None:
    page = (
        f"<section>{STAMP}<p>正文。</p>"
        f'<p><a href="{host}/category/x.html">返回X新闻</a></p></section>'
    )
    extract_or_refuse(page, POST_URL, "emnews")


def test_extraction_survives_a_source_link_with_a_broken_host() -> None:
    page = f'<section>{STAMP}<p>正文。</p><p><a href="http://[x">http://[x</a></p></section>'
    assert extract_or_refuse(page, SITE + "/emnews/2022/05/31/renamed.html", "emnews") is None
