"""Extraction of post pages into Articles, checked against the replica's known reader text.

Every fixture is built from the replica generator (the same seed always gives the same site),
plus a few hand-written pages for shapes the generator cannot make (no ``<section>``, no text).
For each page shape we assert what must come out (first and last sentence of the text, digest,
exact title, the page's own timestamp, outlet, source link, news id) and what must not leak into
the body (site chrome, the spilled ``og:description`` junk, URLs, entities).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from functools import cache

import pytest

from common.links import slug_from_category_url
from common.records import Article
from replica import Post, generate_posts, render_site
from tasks.extraction import (
    ExtractionError,
    content_region,
    extract_article,
    parse_published_at,
    parse_title,
)

SITE = "https://finews.withounder.com"
SEED = 3  # with 300 posts this seed holds every shape below several times
N_POSTS = 300
FETCHED_AT = dt.datetime(2022, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
PLUS_8 = dt.timedelta(hours=8)
F1_THRESHOLD = 0.98

# Strings that must never reach a body: site chrome, the spilled og:description junk, markup.
FORBIDDEN_IN_BODY = (
    "返回首页",
    "tags:",
    "金融消息",
    "(GMT+8",
    "http",
    '">',
    "infoCode",
    "&copy;",
    "© 2021",
    "&lt;",
    "&gt;",
    "&amp;",
    "&quot;",
    "EM_StockImg",
    "K图",
    "display:none",
)


@cache
def posts() -> tuple[Post, ...]:
    return tuple(generate_posts(N_POSTS, seed=SEED))


@cache
def site() -> dict[str, bytes]:
    return render_site(list(posts()), base_url=SITE)


def page_of(post: Post) -> str:
    return site()[post.url_path].decode("utf-8")


def extract(page: str, post: Post) -> Article:
    return extract_article(
        page, SITE + post.url_path, fetched_at=FETCHED_AT, category=post.category, site=SITE
    )


@cache
def article_of(post: Post) -> Article:
    return extract(page_of(post), post)


def sentences(text: str) -> list[str]:
    """Sentences of reader text: split after 。！？ and at line ends."""
    return [s.strip() for s in re.split(r"(?<=[。！？])|\n", text) if s.strip()]


def bigrams(text: str) -> Counter[str]:
    chars = "".join(text.split())
    return Counter(chars[i : i + 2] for i in range(len(chars) - 1))


def bigram_f1(got: str, expected: str) -> float:
    """Character-bigram F1 over non-whitespace characters."""
    got_grams, expected_grams = bigrams(got), bigrams(expected)
    if not got_grams and not expected_grams:
        return 1.0
    overlap = sum((got_grams & expected_grams).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(got_grams.values())
    recall = overlap / sum(expected_grams.values())
    return 2 * precision * recall / (precision + recall)


# --- page shapes, picked from the generated posts by their source -------------------------------

_CATEGORY_LINK = re.compile(r"\(//finews\.(?:withounder\.com|zning\.me)/category/[^)]+\.html\)")


def _kline_emnews(p: Post) -> bool:
    md = p.body_md
    return (
        p.digest is not None
        and "EM_StockImg_Start" in md
        and 'style="display:none' in md
        and "em_stock_key_common" in md
        and 'class="keytip"' in md
    )


SHAPES: dict[str, Callable[[Post], bool]] = {
    "media-em_media": lambda p: p.id_raw.startswith("NW") and 'class="em_media"' in p.body_md,
    "media-stock-spans": lambda p: p.id_raw.startswith("NW") and 'class="keytip"' in p.body_md,
    "media-split-source-line": lambda p: bool(re.search(r"文章来源：[^）]*<span", p.body_md)),
    "media-crlf-separated": lambda p: p.id_raw.startswith("NW") and "</p>\r\n <p" in p.body_md,
    "media-images": lambda p: "<center><img" in p.body_md,
    "media-subheads": lambda p: "<p><strong>" in p.body_md,
    "media-br": lambda p: "<br /></p>" in p.body_md and "display:none" not in p.body_md,
    "emnews-digest-kline-spacer-spans": _kline_emnews,
    "emnews-digest": lambda p: p.digest is not None,
    "emnews-old-markdown": lambda p: p.category == "emnews" and "<p" not in p.body_md,
    "one-line-media": lambda p: (
        p.source_name is not None
        and p.digest is None
        and len(sentences(p.expected_text)) == 2
        and len(p.expected_text) < 150
    ),
    "one-line-plain": lambda p: "\n" not in p.expected_text and len(p.expected_text) < 100,
    "long-10k": lambda p: len(p.expected_text) > 10_000,
    "entities-lt-gt-amp": lambda p: bool(re.search(r"&lt;[^&<>]+&gt;", p.body_md)),
    "raw-lt-in-markdown": lambda p: bool(re.search(r"<\d", p.body_md)),
    "english-tickers": lambda p: bool(re.search(r"\(\w+(\.HK)?\)盘前涨超", p.expected_text)),
    "source-empty-link": lambda p: bool(re.search(r"^<>$", p.body_md, re.MULTILINE)),
    "source-none": lambda p: p.source_url is None and "<>" not in p.body_md,
    "source-zning-newsshare": lambda p: "finews.zning.xyz/html_News/NewsShare" in p.body_md,
    "source-choice-newsshare": lambda p: "choicewzp1.eastmoney.com" in p.body_md,
    "source-finance-eastmoney": lambda p: "//finance.eastmoney.com/news/" in p.body_md,
    "source-stock-eastmoney": lambda p: "//stock.eastmoney.com/news/" in p.body_md,
    "source-hk-eastmoney": lambda p: "//hk.eastmoney.com/news/" in p.body_md,
    "backlinks-none": lambda p: "[返回" not in p.body_md,
    "backlinks-rel": lambda p: "](../emnews/)" in p.body_md,
    "backlinks-dot": lambda p: "](./emnews/)" in p.body_md,
    "backlinks-zning-me": lambda p: "](//finews.zning.me/" in p.body_md,
    "backlinks-abs-one-line": lambda p: "(//finews.withounder.com/emnews/)｜" in p.body_md,
    "backlinks-abs-two-lines": lambda p: "(//finews.withounder.com/emnews/)\n" in p.body_md,
    "backlinks-category-one-line": lambda p: bool(
        re.search(r"\(//finews\.withounder\.com/category/[^)]+\.html\)｜", p.body_md)
    ),
    "backlinks-category-two-lines": lambda p: bool(
        re.search(r"\(//finews\.withounder\.com/category/[^)]+\.html\)\n", p.body_md)
    ),
    "title-raw-lt": lambda p: "<" in p.title,
    "title-ampersand": lambda p: "&" in p.title,
    "title-double-quotes": lambda p: '"' in p.title,
    "title-single-quotes": lambda p: "'" in p.title,
    "category-with-space": lambda p: " " in p.category,
    "category-with-parentheses": lambda p: "(" in p.category,
    "date-without-offset": lambda p: not p.date_has_offset,
}


def posts_of(shape: str) -> list[Post]:
    found = [p for p in posts() if SHAPES[shape](p)]
    assert found, f"the replica (seed {SEED}, {N_POSTS} posts) no longer makes shape {shape!r}"
    return found


def check_article(post: Post, article: Article) -> None:
    """Everything a correct extraction of this replica post must satisfy."""
    body = article.body
    texts = sentences(post.expected_text)
    assert texts, post.id_raw
    # What must appear.
    assert texts[0] in body, (post.id_raw, texts[0])
    assert texts[-1] in body, (post.id_raw, texts[-1])
    for sentence in texts:
        if any(c in sentence for c in "<>&\"'"):
            assert sentence in body, (post.id_raw, sentence)
    assert article.title == post.title
    assert article.published_at == post.published_at
    assert article.published_at is not None
    assert article.published_at.utcoffset() == PLUS_8
    assert article.info_code == post.info_code
    assert article.info_code_raw == post.id_raw
    assert article.source_url == post.source_url
    assert article.source == post.source_name
    assert article.digest == post.digest
    if post.digest is not None:
        assert body.startswith(post.digest)
    if post.source_name is not None:
        assert body.rstrip().endswith(f"（文章来源：{post.source_name}）")
    assert article.tags == (post.tag,)
    assert article.url == SITE + post.url_path
    assert article.category == post.category
    assert article.fetched_at == FETCHED_AT
    assert article.extraction_path == "region"
    assert "trafilatura/2.3.1" in article.extractor
    if _CATEGORY_LINK.search(post.body_md) and "(//finews.zning.me/emnews/)" not in post.body_md:
        assert article.category_page is not None
        assert article.category_page.startswith(SITE + "/category/")
        assert slug_from_category_url(article.category_page) == post.category
    else:
        assert article.category_page is None
    # What must not appear.
    for junk in FORBIDDEN_IN_BODY:
        assert junk not in body, (post.id_raw, junk)
    assert "返回" + post.tag not in body
    assert "<>" not in body
    if post.title not in post.expected_text:
        assert post.title not in body
    assert body == body.strip()
    assert "\n\n" not in body


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_post_of_a_shape_is_extracted_correctly(shape: str) -> None:
    for post in posts_of(shape):
        check_article(post, article_of(post))


def test_shapes_combine_kline_spacer_and_spans_in_one_emnews_post() -> None:
    post = posts_of("emnews-digest-kline-spacer-spans")[0]
    article = article_of(post)
    assert post.digest is not None
    assert article.digest == post.digest
    assert article.body.split("\n")[0] == post.digest
    assert bigram_f1(article.body, post.expected_text) >= F1_THRESHOLD


def test_long_post_is_kept_whole() -> None:
    for post in posts_of("long-10k"):
        article = article_of(post)
        assert len(article.body) >= 0.98 * len(post.expected_text)
        assert bigram_f1(article.body, post.expected_text) >= 0.995


def test_raw_lt_text_survives_verbatim() -> None:
    for post in posts_of("raw-lt-in-markdown"):
        for fragment in re.findall(r"<[\d.]+[^，。]*", post.expected_text):
            assert fragment in article_of(post).body


def test_entities_are_decoded_once() -> None:
    for post in posts_of("entities-lt-gt-amp"):
        body = article_of(post).body
        for bracketed in re.findall(r"<[^<>]+>", post.expected_text):
            assert bracketed in body
        assert "S&P 500" in body or "AT&T" in body


def test_twins_share_one_info_code() -> None:
    by_code: dict[str, list[Post]] = {}
    for post in posts():
        by_code.setdefault(post.info_code, []).append(post)
    twins = [pair for pair in by_code.values() if len(pair) == 2]
    assert twins, "the replica no longer makes NW/digits twins"
    for pair in twins:
        raws = sorted(article_of(p).info_code_raw for p in pair)
        assert raws == sorted(p.id_raw for p in pair)
        assert {article_of(p).info_code for p in pair} == {pair[0].info_code}
        assert any(r.startswith("NW") for r in raws)


def test_bigram_f1_against_expected_text_for_every_post() -> None:
    scores = {post.id_raw: bigram_f1(article_of(post).body, post.expected_text) for post in posts()}
    assert len(scores) == N_POSTS
    low = {key: round(score, 4) for key, score in scores.items() if score < F1_THRESHOLD}
    assert low == {}


def test_bigram_f1_helper() -> None:
    assert bigram_f1("甲乙丙丁", "甲乙 丙丁") == 1.0
    assert bigram_f1("", "") == 1.0
    assert bigram_f1("甲乙", "丙丁") == 0.0
    assert 0.0 < bigram_f1("甲乙丙丁 http://x tags: 新闻", "甲乙丙丁") < F1_THRESHOLD


# --- the smaller functions ----------------------------------------------------------------------


def test_content_region_is_the_body_section() -> None:
    post = posts_of("media-em_media")[0]
    region = content_region(page_of(post))
    assert region is not None
    assert region.lstrip().startswith("<small>(GMT+8, Asia/Shanghai, CST)")
    assert f"<h1>{post.title}</h1>" in region
    assert "<footer>" not in region
    assert "og:description" not in region
    assert content_region("<html><body><p>x</p></body></html>") is None
    assert content_region("<section><p>opened, never closed</p>") is None
    assert content_region("</section><section>") is None


def test_a_section_inside_the_post_stays_in_the_region() -> None:
    """Markup pasted from an editor can hold its own ``<section>``: the region still runs from
    the page's section to its end, and the head's junk stays out of the body."""
    post = posts_of("media-em_media")[0]
    first = sentences(post.expected_text)[0]
    page = page_of(post)
    head, body = page.split("<body", 1)  # the head repeats the text: edit the body's
    page = head + "<body" + body.replace(first, f"{first}<section><p>内嵌段落。</p></section>", 1)
    assert "内嵌段落" in (content_region(page) or "")
    article = extract(page, post)
    assert article.extraction_path == "region"
    assert article.published_at == post.published_at
    assert first in article.body and "内嵌段落。" in article.body
    assert sentences(post.expected_text)[-1] in article.body
    for junk in FORBIDDEN_IN_BODY:
        assert junk not in article.body, junk


@pytest.mark.parametrize(
    "shape", ["date-without-offset", "media-em_media", "emnews-digest", "emnews-old-markdown"]
)
def test_parse_published_at_is_the_pages_own_stamp(shape: str) -> None:
    for post in posts_of(shape):
        page = page_of(post)
        when = parse_published_at(page, content_region(page))
        assert when == post.published_at
        assert when is not None and when.utcoffset() == PLUS_8


def test_parse_published_at_prefers_the_stamp_over_the_head() -> None:
    page = (
        '<meta property="article:published_time" content="2022-05-30T01:02:03+08:00" />'
        "<section><small>(GMT+8, Asia/Shanghai, CST) 2022-05-31 10:20:30</small></section>"
    )
    assert parse_published_at(page, content_region(page)) == dt.datetime(
        2022, 5, 31, 10, 20, 30, tzinfo=dt.timezone(PLUS_8)
    )


def test_parse_published_at_falls_back_to_the_head_then_none() -> None:
    meta = '<meta property="article:published_time" content="2022-05-30T01:02:03Z" />'
    when = parse_published_at(meta, None)
    assert when == dt.datetime(2022, 5, 30, 9, 2, 3, tzinfo=dt.timezone(PLUS_8))
    assert when is not None and when.utcoffset() == PLUS_8
    ld = '<script type="application/ld+json">{"datePublished": "2022-05-30 01:02:03"}</script>'
    assert parse_published_at(ld, None) == dt.datetime(
        2022, 5, 30, 1, 2, 3, tzinfo=dt.timezone(PLUS_8)
    )
    bad = "<section><small>(GMT+8, Asia/Shanghai, CST) 2022-13-45 99:99:99</small></section>"
    assert parse_published_at(bad, content_region(bad)) is None
    assert parse_published_at("<p>no date</p>", None) is None


@pytest.mark.parametrize(
    "shape", ["title-raw-lt", "title-ampersand", "title-double-quotes", "title-single-quotes"]
)
def test_parse_title_reads_the_raw_h1(shape: str) -> None:
    for post in posts_of(shape):
        page = page_of(post)
        assert parse_title(page, content_region(page)) == post.title


@pytest.mark.parametrize(
    ("h1", "title"),
    [
        ("精度满足<1% 盈利&增长", "精度满足<1% 盈利&增长"),
        ('"双碳"目标', '"双碳"目标'),
        ("<b>加粗</b>标题", "加粗标题"),
    ],
    ids=["raw-lt-and-amp", "double-quotes", "markup-in-h1"],
)
def test_parse_title_handwritten_h1(h1: str, title: str) -> None:
    region = f"<small>(GMT+8, Asia/Shanghai, CST) 2022-05-31 10:20:30</small><h1>{h1}</h1>"
    assert parse_title(f"<section>{region}</section>", region) == title


def test_parse_title_head_fallback_plain_title() -> None:
    post = next(p for p in posts() if re.fullmatch(r"[\w：:，、%.\- ]+", p.title))
    page = page_of(post).replace("<section>", "").replace("</section>", "")
    assert parse_title(page, None) == post.title


@pytest.mark.parametrize("shape", ["title-ampersand", "title-double-quotes", "title-single-quotes"])
def test_parse_title_head_fallback_unescapes_the_headline(shape: str) -> None:
    """jekyll-seo-tag writes the JSON-LD headline HTML-escaped (&quot; &amp; &#39;)."""
    post = posts_of(shape)[0]
    page = page_of(post).replace("<section>", "").replace("</section>", "")
    assert parse_title(page, None) == post.title


# --- fallbacks and failures ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["media-em_media", "emnews-digest", "emnews-old-markdown"])
def test_page_without_section_falls_back_to_whole_page(shape: str) -> None:
    post = posts_of(shape)[0]
    page = page_of(post).replace("<section>", "<div>").replace("</section>", "</div>")
    assert content_region(page) is None
    article = extract(page, post)
    assert article.extraction_path == "whole-page"
    assert article.body.strip()
    assert sentences(post.expected_text)[0] in article.body
    assert article.published_at == post.published_at  # from the head's metadata
    assert article.title == post.title  # from the head's JSON-LD headline, unescaped
    assert article.published_at is not None and article.published_at.utcoffset() == PLUS_8
    assert article.info_code == post.info_code
    assert article.info_code_raw == post.id_raw
    assert article.tags == (post.tag,)
    assert "trafilatura/2.3.1" in article.extractor


def test_one_sentence_post_keeps_its_sentence() -> None:
    region = (
        "<small>(GMT+8, Asia/Shanghai, CST) 2022-05-31 10:20:30</small><h1>标题</h1>"
        "<p>只有一句话。</p><small>tags: <em>东财滚动新闻</em></small>"
    )
    page = f"<html><body><section>{region}</section></body></html>"
    url = f"{SITE}/emnews/2022/05/31/202205312398034850.html"
    article = extract_article(page, url, fetched_at=FETCHED_AT, category="emnews", site=SITE)
    assert article.body == "只有一句话。"
    assert article.extraction_path in {"region", "region-text"}
    assert article.title == "标题"
    assert article.source is None
    assert article.tags == ("东财滚动新闻",)


def _no_text_pages() -> dict[str, str]:
    post = posts_of("media-em_media")[0]
    page = page_of(post)
    region = content_region(page)
    assert region is not None
    paragraphs = re.sub(r'<p( class="em_media")?>(?!<a href).*?</p>', "", region, flags=re.DOTALL)
    return {
        "empty-string": "",
        "whitespace": " \n\t ",
        "empty-html": "<html><head></head><body></body></html>",
        "empty-section": "<html><body><div class='wrapper'><section></section></div></body></html>",
        "stamp-title-and-chrome-only": page.replace(region, paragraphs),
    }


@pytest.mark.parametrize("name", list(_no_text_pages()))
def test_page_without_text_raises_extraction_error(name: str) -> None:
    page = _no_text_pages()[name]
    post = posts_of("media-em_media")[0]
    with pytest.raises(ExtractionError):
        extract(page, post)


def test_page_without_any_news_id_raises_extraction_error() -> None:
    page = site()["/404.html"].decode("utf-8")
    with pytest.raises(ExtractionError):
        extract_article(
            page, f"{SITE}/404.html", fetched_at=FETCHED_AT, category="emnews", site=SITE
        )


def test_news_id_from_the_source_link_when_the_url_has_none() -> None:
    post = posts_of("source-zning-newsshare")[0]
    url = f"{SITE}/{post.category.split()[0].lower()}/2022/05/31/renamed.html"
    article = extract_article(
        page_of(post), url, fetched_at=FETCHED_AT, category=post.category, site=SITE
    )
    assert article.info_code_raw == post.id_raw
    assert article.info_code == post.info_code


def test_extractor_version_is_recorded() -> None:
    article = article_of(posts()[0])
    assert "trafilatura/2.3.1" in article.extractor
    assert article.extractor.startswith("finews-region/")
    assert len(article.content_hash) == 64
