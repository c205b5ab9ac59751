"""The replica must look like finews.withounder.com to a crawler and be exactly reproducible."""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import lxml.html
from lxml import etree

from replica import Post, ReplicaServer, generate_posts, markup, render_site
from replica.__main__ import main as cli_main
from replica.posts import SHANGHAI, md_safe
from replica.render import post_content


@cache
def posts60() -> tuple[Post, ...]:
    return tuple(generate_posts(60, seed=0))


@cache
def site60() -> dict[str, bytes]:
    return render_site(list(posts60()))


@cache
def posts300() -> tuple[Post, ...]:
    return tuple(generate_posts(300, seed=7))


def _page(path: str) -> str:
    return site60()[path].decode("utf-8")


def clean_extract(page: bytes) -> str:
    """A careful extractor: paragraphs of <section>, minus the site's chrome."""
    section = lxml.html.fromstring(page.decode("utf-8")).xpath("//div[@class='wrapper']/section")[0]
    texts = []
    for el in section:
        if el.tag == "blockquote":
            texts += [p.text_content().strip() for p in el.iter("p")]
        if el.tag != "p" or "display:none" in (el.get("style") or ""):
            continue
        text = el.text_content().strip()
        links = el.findall("a")
        if (links and (text.startswith("http") or "返回" in text)) or text == "<>":
            continue
        if text:
            texts.append(text)
    return "\n".join(texts)


def test_generation_is_deterministic() -> None:
    assert generate_posts(60, seed=0) == list(posts60())
    assert render_site(generate_posts(60, seed=0)) == site60()
    assert generate_posts(60, seed=1) != list(posts60())
    assert len(posts60()) == 60


def test_every_shape_occurs_in_sixty_posts() -> None:
    posts = posts60()
    md = [p.body_md for p in posts]

    def some(pattern: str) -> bool:
        return any(re.search(pattern, body) for body in md)

    assert some(r"</p>\r\n <p>") and some(r"</p>\n <p>") and some(r"</p><p>")
    assert some(r'<p class="em_media">（文章来源：[^<]+）</p>')
    assert some(r"^> \S") and some(r"^\n[^<\n]")  # digest; plain-Markdown emnews
    assert some(r"<http://finews\.zning\.xyz/html_News/NewsShare\.html\?infoCode=NW\d{18}>")
    assert some(r"<http://choicewzp1\.eastmoney\.com/html_News/NewsShare\.html\?infoCode=NW\d{18}>")
    for host in ("finance", "stock", "hk"):
        assert some(rf"<http://{host}\.eastmoney\.com/news/\d+,\d{{18}}\.html>")
    assert some(r"\n\n<>(\n|$)")
    assert some(re.escape(markup.KLINE_START) + ".*" + re.escape(markup.KLINE_END))
    assert some(re.escape(markup.SPACER)) or some(re.escape(markup.SPACER_BR))
    assert some(
        r'<span id="stock_[\d.A-Z]+"><a href="http://quote\.eastmoney\.com/[^"]+" class="keytip"'
    )
    assert some(r'<span web="1" [^>]*class="em_stock_key_common"')
    assert some(r"文章来源：[\u4e00-\u9fff]+<span")  # a quote span splitting a word
    assert some(r"<p><strong>[^<]+</strong></p>") and some(r"<center><img ")
    assert some(r"&lt;[^&]+&gt;") and some(r"[\u4e00-\u9fff]<\d")  # entities; raw "<" in Markdown
    assert some(r"\]\(\.\./emnews/\)\n\[返回首页\]\(\.\./\)") and some(r"\]\(\./emnews/\)")
    assert some(r"\]\(//finews\.zning\.me/")
    assert some(r"\]\(//finews\.withounder\.com/emnews/\)\n\[返回首页\]")
    assert some(r"\]\(//finews\.withounder\.com/emnews/\)｜\[返回首页\]")
    assert some(r"\]\(//finews\.withounder\.com/category/[^)]+\.html\)")
    assert any("[返回" not in body for body in md)
    assert any(re.search(r"[A-Za-z]{4,}", p.expected_text) for p in posts)
    assert any(re.search(r"[<&\"']", p.title) for p in posts)
    lengths = [len(p.expected_text) for p in posts]
    assert min(lengths) < 60 and max(lengths) >= 10_000
    assert sum(300 <= n <= 3000 for n in lengths) > len(lengths) / 2
    offsets = sum(p.date_has_offset for p in posts)
    assert 0.25 * len(posts) < offsets < 0.75 * len(posts)


def test_categories_include_quirky_slugs() -> None:
    categories = {p.category for p in posts60()}
    assert "emnews" in categories and len(categories) == 20
    assert any(c != c.lower() for c in categories)
    assert any(re.search(r"\d", c) for c in categories)
    assert any("(" in c and ")" in c for c in categories)
    assert any(" " in c for c in categories)
    for post in posts60():
        expected_tag = "东财滚动新闻" if post.category == "emnews" else post.tag
        assert post.tag == expected_tag and post.tag.endswith("新闻")


def test_twins_share_the_story_and_the_digits() -> None:
    by_code: dict[str, list[Post]] = {}
    for post in posts300():
        by_code.setdefault(post.info_code, []).append(post)
    twins = [group for group in by_code.values() if len(group) == 2]
    assert len(twins) >= 5 and all(len(g) <= 2 for g in by_code.values())
    for group in twins:
        media, emnews = sorted(group, key=lambda p: p.category == "emnews")
        assert media.id_raw == "NW" + emnews.id_raw and emnews.category == "emnews"
        assert media.published_at == emnews.published_at and media.title == emnews.title
        assert emnews.digest is not None and media.digest is None
        assert media.expected_text.split("\n")[-1] == emnews.expected_text.split("\n")[-1]


def test_ids_dates_and_sources_agree() -> None:
    end = datetime(2022, 6, 1, 12, 0, tzinfo=SHANGHAI)
    for post in posts300():
        assert re.fullmatch(r"(NW)?\d{18}", post.id_raw)
        assert post.id_raw.startswith("NW") == (post.category != "emnews")
        local = post.published_at.astimezone(SHANGHAI)
        assert post.info_code[:8] == f"{local:%Y%m%d}" and local.microsecond == 0
        assert (end - local).total_seconds() <= 3 * 86400 and local <= end
        assert post.published_at.utcoffset().total_seconds() == 8 * 3600
        if post.source_url:
            assert post.info_code in post.source_url
            assert f"<{post.source_url}>" in post.body_md
        if post.source_name:
            assert f"（文章来源：{post.source_name}）" in post.expected_text
        if post.digest:
            assert post.body_md.startswith(f"> {post.digest}\n\n")
            assert post.expected_text.startswith(post.digest + "\n")
            assert md_safe(post.digest)


def test_url_path_downcases_splits_and_uses_shanghai_dates() -> None:
    post = next(p for p in posts60() if p.category == "emnews")
    late_utc = datetime(2022, 5, 31, 17, 30, tzinfo=UTC)  # already June 1st in Shanghai
    moved = dataclasses.replace(post, category="Xinhua She", published_at=late_utc)
    assert moved.url_path == f"/xinhua/she/2022/06/01/{post.id_raw}.html"
    spaced = next(p for p in posts60() if " " in p.category)
    assert spaced.url_path.startswith("/" + "/".join(spaced.category.lower().split()) + "/")
    assert all(p.url_path in site60() for p in posts60())


def test_expected_text_is_what_a_clean_extractor_reads() -> None:
    site = render_site(list(posts300()))
    for post in posts300():
        assert clean_extract(site[post.url_path]) == post.expected_text
        assert "返回首页" not in post.expected_text and "tags:" not in post.expected_text
        assert "http" not in post.expected_text


def test_post_page_template_and_broken_head() -> None:
    post = next(p for p in posts60() if p.category != "emnews" and p.source_url)
    page = _page(post.url_path)
    local = post.published_at.astimezone(SHANGHAI)
    content = post_content(post)
    assert f'<meta property="og:description" content="{content}">' in page
    assert page.count(content) == 2  # in the broken head and in <section>
    assert f"<section>\n\n      {content}\n\n      </section>" in page
    assert f"<small>(GMT+8, Asia/Shanghai, CST) {local:%Y-%m-%d %H:%M:%S}</small>" in page
    assert f"<h1>{post.title}</h1>" in page
    assert f"  <small>tags: <em>{post.tag}</em></small>" in page
    assert f'<p><a href="{post.source_url}">{post.source_url}</a></p>' in page
    assert '<h1><a href="https://finews.withounder.com/">金融消息</a></h1>' in page
    assert "<p>&copy; 2021</p>" in page and "G-MTYH758FNF" in page and "AutoRefresh" in page
    canonical = "https://finews.withounder.com" + post.url_path
    assert f'<link rel="canonical" href="{canonical}" />' in page
    iso = local.isoformat()
    assert iso.endswith("+08:00")
    assert f'<meta property="article:published_time" content="{iso}" />' in page
    assert re.search(r"<title>[^<]+ \| 金融消息</title>", page)
    ld = json.loads(re.search(r'ld\+json">\n(\{.*?\})</script>', page).group(1))
    assert ld["@type"] == "BlogPosting" and ld["datePublished"] == iso
    assert ld["url"] == canonical and ld["headline"]
    head = lxml.html.fromstring(page.encode()).xpath('//meta[@property="og:description"]')[0]
    assert head.get("content") != content  # the first '"' of the post ends the attribute


def test_category_pages_list_newest_first_with_raw_titles() -> None:
    posts = list(posts300())
    site = render_site(posts)
    odd = next(p for p in posts if re.search(r"[<&\"']", p.title) and " " not in p.category)
    page = site[f"/category/{odd.category}.html"].decode()
    assert f'<li><a href="{odd.url_path}">{odd.title}</a></li>' in page
    mine = [p for p in posts if p.category == odd.category]
    hrefs = re.findall(r'    <li><a href="([^"]+)">', page.split("<section>")[1])
    assert hrefs == [p.url_path for p in sorted(mine, key=lambda p: p.published_at, reverse=True)]


def test_space_category_lists_nothing_but_home_links_its_posts() -> None:
    spaced = [p for p in posts60() if " " in p.category]
    category = spaced[0].category
    page = _page("/category/" + category.replace(" ", "%20") + ".html")
    assert '<h2 id="">\n</h2>\n<ul>\n</ul>\n' in page and "<li>" not in page
    newest = max((p for p in spaced if p.category == category), key=lambda p: p.published_at)
    home = _page("/")
    assert f'<h2 id="{newest.tag}">{newest.tag}</h2>' in home
    assert f'<li><a href="{newest.url_path}">{newest.title}</a></li>' in home


def test_home_emnews_and_feed() -> None:
    posts = list(posts300())
    site = render_site(posts, base_url="http://example.test")
    home = site["/"].decode()
    for tag in {p.tag for p in posts}:
        section = (
            home.split("<section>")[1].split(f'<h2 id="{tag}">{tag}</h2>')[1].split("</ul>")[0]
        )
        assert section.count("<li>") == min(5, sum(p.tag == tag for p in posts))
    emnews = site["/emnews/"].decode().split("<section>")[1]
    assert emnews.count('target="_blank"') == 20
    feed = etree.fromstring(site["/feed.xml"])
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("a:entry", ns)
    newest = sorted(posts, key=lambda p: (-p.published_at.timestamp(), p.id_raw))[:10]
    assert len(entries) == 10
    for entry, post in zip(entries, newest, strict=True):
        assert entry.findtext("a:id", namespaces=ns) == "http://example.test" + post.url_path
        assert entry.findtext("a:content", namespaces=ns) == post.body_html.strip()
    assert "/404.html" in site and b"Page not found" in site["/404.html"]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_server_behaves_like_github_pages() -> None:
    site = site60()
    spaced = next(p.category for p in posts60() if " " in p.category)
    parens = next(p.category for p in posts60() if "(" in p.category)
    with ReplicaServer(site) as server:
        base = server.base_url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        status, headers, body = _get(base + "/")
        assert status == 200 and body == site["/"]
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        etag, modified = headers["ETag"], headers["Last-Modified"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert _get(base + "/", {"If-None-Match": etag})[0] == 304
        assert _get(base + "/", {"If-Modified-Since": modified})[0] == 304
        assert _get(base + "/", {"If-None-Match": '"other"'})[0] == 200
        status, headers, body = _get(base + "/feed.xml", {"Accept-Encoding": "gzip"})
        assert headers["Content-Type"] == "application/xml"
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == site["/feed.xml"]
        assert _get(base + "/emnews/")[0] == 200
        assert _get(base + "/category/" + spaced.replace(" ", "%20") + ".html")[0] == 200
        encoded = parens.replace("(", "%28").replace(")", "%29")
        assert _get(f"{base}/category/{encoded}.html")[2] == site[f"/category/{parens}.html"]
        status, _, body = _get(base + "/robots.txt")
        assert status == 404 and body == site["/404.html"]

        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("HEAD", "/")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        assert int(head.getheader("Content-Length")) == len(site["/"])
        conn.close()

        post = posts60()[0]
        changed = dict(site)
        changed["/"] = site["/"] + b"<!-- rebuilt -->"
        del changed[post.url_path]
        server.update(changed)
        status, headers, body = _get(base + "/", {"If-None-Match": etag})
        assert status == 200 and body.endswith(b"<!-- rebuilt -->") and headers["ETag"] != etag
        assert _get(base + post.url_path)[0] == 404

        log = server.requests
        assert ("GET", "/", 200) in log and ("GET", "/", 304) in log
        assert ("HEAD", "/", 200) in log and ("GET", "/robots.txt", 404) in log
        assert ("GET", post.url_path, 404) in log


def test_cli_writes_the_site(tmp_path: Path) -> None:
    assert cli_main(["--posts", "60", "--seed", "0", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").read_bytes() == site60()["/"]
    assert (tmp_path / "emnews" / "index.html").is_file()
    assert (tmp_path / "feed.xml").is_file() and (tmp_path / "404.html").is_file()
    spaced = next(p for p in posts60() if " " in p.category)
    assert (tmp_path / "category" / f"{spaced.category}.html").is_file()
    assert (tmp_path / spaced.url_path.lstrip("/")).is_file()
