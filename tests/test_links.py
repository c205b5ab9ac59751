import datetime as dt

import pytest

from common.links import category_page_url, post_categories, post_date, to_site_url

SITE = "http://127.0.0.1:8000"
PAGE = f"{SITE}/emnews/2022/05/31/202205312398034850.html"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("//finews.withounder.com/category/x.html", f"{SITE}/category/x.html"),
        ("https://finews.withounder.com/", f"{SITE}/"),
        ("//finews.zning.me/emnews/", f"{SITE}/emnews/"),
        ("/a/2022/01/01/NW1.html", f"{SITE}/a/2022/01/01/NW1.html"),
        ("/a b/2022/01/01/NW1.html", f"{SITE}/a%20b/2022/01/01/NW1.html"),
        ("http://evil.example/x.html", None),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ("file:///etc/passwd", None),
        ("http://169.254.169.254/latest", None),
        ("#top", None),
    ],
    ids=[
        "site-host",
        "site-root",
        "old-domain",
        "relative",
        "space",
        "other-host",
        "javascript",
        "data",
        "file",
        "metadata-ip",
        "fragment",
    ],
)
def test_to_site_url(href: str, expected: str | None) -> None:
    assert to_site_url(href, PAGE, SITE) == expected


def test_category_page_url_encodes_spaces() -> None:
    assert category_page_url(SITE, "xinhua she") == f"{SITE}/category/xinhua%20she.html"


def test_post_url_parts() -> None:
    url = f"{SITE}/xinhua/she/2022/05/31/NW202205312398034850.html"
    assert post_categories(url) == ["xinhua", "she"]
    assert post_date(url) == dt.date(2022, 5, 31)
    assert post_categories(f"{SITE}/category/x.html") is None
