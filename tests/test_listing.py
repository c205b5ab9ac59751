from tasks.listing import dedupe_refs, parse_feed, parse_listing

SITE = "http://127.0.0.1:9"

CATEGORY_PAGE = """<!DOCTYPE html><html><head>
<meta property="og:description" content="
<h2 id="">
</h2>
<ul>
    <li><a href="/cailianshe/2022/05/31/NW202205312398034850.html">title "quoted" <b</a></li>
</ul>
">
</head><body><div class="wrapper"><section>
<ul>
    <li><a href="/cailianshe/2022/05/31/NW202205312398034850.html">title "quoted" <b</a></li>
    <li><a href="/cailianshe/2022/05/30/NW202205302398034851.html">精度满足<1%</a></li>
    <li><a href="/cailianshe/2022/05/30/NW202205302398034851.html">repeat</a></li>
    <li><a href="http://evil.example/cailianshe/2022/05/30/NW202205302398034852.html">x</a></li>
    <li><a href="javascript:alert(1)">x</a></li>
</ul></section></div></body></html>"""


def test_category_page_lists_each_post_once() -> None:
    refs = parse_listing(CATEGORY_PAGE, f"{SITE}/category/cailianshe.html", SITE, "cailianshe")
    assert [r.info_code_raw for r in refs] == ["NW202205312398034850", "NW202205302398034851"]
    assert all(r.url.startswith(SITE + "/cailianshe/") for r in refs)
    assert {r.category for r in refs} == {"cailianshe"}
    assert refs[0].info_code == "202205312398034850"


def test_home_page_takes_category_from_url() -> None:
    page = (
        '<html><body><h2 id="x">X新闻</h2><ul>'
        '<li><a href="/xinhua/she/2022/05/31/NW202205312398034850.html">t</a></li>'
        '<li><a href="/emnews/2022/05/31/202205312398034850.html">t</a></li></ul></body></html>'
    )
    refs = parse_listing(page, f"{SITE}/", SITE, None)
    assert [r.category for r in refs] == ["xinhua she", "emnews"]
    kept, dropped = dedupe_refs(refs)
    assert dropped == 1
    assert [r.info_code_raw for r in kept] == ["NW202205312398034850"]


def test_feed_links() -> None:
    xml = (
        '<feed><link href="https://finews.withounder.com/feed.xml" rel="self"/>'
        '<entry><link href="https://finews.withounder.com/emnews/2022/05/31/202205312398034850.html"'
        ' rel="alternate" type="text/html"/></entry></feed>'
    )
    refs = parse_feed(xml, f"{SITE}/feed.xml", SITE)
    assert [r.url for r in refs] == [f"{SITE}/emnews/2022/05/31/202205312398034850.html"]


def test_garbage_gives_nothing() -> None:
    assert parse_listing("<<<>>>\x00", f"{SITE}/", SITE, None) == []
    assert parse_feed("", f"{SITE}/feed.xml", SITE) == []
