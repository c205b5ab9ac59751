"""Turning the hrefs found on pages into URLs of the configured site, or refusing them.

The site links to itself with absolute hosts (``//finews.withounder.com/…`` and older domains);
those map onto the configured base so a replica or mirror is crawled the same way. Anything
else (other hosts, ``javascript:``, ``data:``, ``file:``) is not ours and is never followed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

SITE_HOSTS = frozenset({"finews.withounder.com", "finews.zning.me", "finews.zning.xyz"})
_POST_PATH = re.compile(
    r"^/(?P<cats>(?:[^/]+/)+?)(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/[^/]+\.html$", re.ASCII
)
_CATEGORY_PATH = re.compile(r"^/category/(?P<slug>[^/]+)\.html$")
# host[:port] as the crawl accepts it: ASCII (an internationalised name in its xn-- form)
NETLOC = re.compile(r"(?:[a-z0-9_.\-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def to_site_url(href: str, page_url: str, site: str) -> str | None:
    """Resolve ``href`` on ``page_url`` into a URL on ``site``, or None when it leaves the site."""
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    base = urlsplit(site)
    try:
        resolved = urlsplit(urljoin(page_url, href))
        resolved.port  # noqa: B018  (raises on a malformed port)
    except ValueError:  # malformed host ("//[x", NFKC tricks): not a link we follow
        return None
    if resolved.scheme not in ("http", "https"):
        return None
    host = (resolved.hostname or "").lower()
    if resolved.netloc.lower() != base.netloc and host not in SITE_HOSTS:
        return None
    path = quote(unquote(resolved.path), safe="/%()!*'~,;:@&=+$")
    return urlunsplit((base.scheme, base.netloc, path or "/", "", ""))


def url_path(url: str) -> str:
    """The path of a URL, or "" when the URL cannot even be split (a malformed host)."""
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


def category_page_url(site: str, slug: str) -> str:
    """Category pages live at ``/category/<slug>.html``, the slug URL-encoded (spaces too)."""
    return f"{site}/category/{quote(slug, safe='()')}.html"


def post_categories(url: str) -> list[str] | None:
    """The category path of a post URL (``/<cat>/…/<YYYY>/<MM>/<DD>/<id>.html``), or None."""
    match = _POST_PATH.match(url_path(url))
    if not match:
        return None
    return [unquote(part) for part in match.group("cats").strip("/").split("/")]


@functools.lru_cache(maxsize=4096)
def slug_from_category_url(url: str) -> str | None:
    """The slug of a category page URL, or None. Cached: a run asks it of a few hundred
    listing-page URLs, once per reference found on them (tens of thousands of calls)."""
    match = _CATEGORY_PATH.match(url_path(url))
    return unquote(match.group("slug")) if match else None


def post_date(url: str) -> dt.date | None:
    """The publication day written in a post URL (Asia/Shanghai), used to filter backfills."""
    match = _POST_PATH.match(url_path(url))
    if not match:
        return None
    try:
        return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None
