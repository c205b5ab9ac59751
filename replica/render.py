"""The published site: Jekyll's layout (with its broken ``<head>``), jekyll-seo-tag, the
category/home/emnews lists and jekyll-feed, rendered byte-for-byte like ``shared/site/pages``."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable

from replica import vocab
from replica.posts import SHANGHAI, Post

SITE_TITLE = "金融消息"
OLD_HOST = "https://finews.zning.me"  # the layout's og:url still names the old host
_TAG = re.compile(r"<.*?>", re.DOTALL)
_SCRIPT = re.compile(r"<script.*?</script>|<!--.*?-->|<style.*?</style>", re.DOTALL | re.I)
_WS = re.compile(r"\s+")
_BARE_AMP = re.compile(r"&(?!(?:[a-zA-Z][a-zA-Z0-9]*|#\d+|#[xX][0-9a-fA-F]+);)")

_HEAD_TOP = """<!DOCTYPE html>
<html lang="zh-CN">
  <head>
    <meta charset="UTF-8">
    <meta http-equiv="X-UA-Compatible" content="IE=edge">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta content="ZNing" name="author" />
    <meta property="og:type" content="website" />
    <meta property="og:title" content="{title}">
    <meta property="og:description" content="{content}">
    <meta property="og:image" content="https://withounder.com/images/newzningnetcircle.png">
    <meta property="og:url" content="{old_url}">
    <meta name="theme-color" content="#1976D2">
    <link rel="shortcut icon" href="https://withounder.com/images/favicon.ico">

"""
_HEAD_BOTTOM = """    <link rel="stylesheet" href="/assets/css/style.css?v=5f2c1d0">
    <!--[if lt IE 9]>
    <script src="https://cdnjs.cloudflare.com/ajax/libs/html5shiv/3.7.3/html5shiv.min.js"></script>
    <![endif]-->
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-MTYH758FNF"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-MTYH758FNF');
</script>
    <script type="text/JavaScript">
      function AutoRefresh( t ) {
       setTimeout("location.reload(true);", t);
      }
    </script>
  </head>
  <body onload="JavaScript:AutoRefresh(60000);">
    <div class="wrapper">
      <header>
        <h1><a href="https://finews.withounder.com/">金融消息</a></h1>

        <p></p>

      </header>
      <section>

      """
_TAIL = """

      </section>
      <footer>
        <p>&copy; 2021</p>
      </footer>
    </div>
    <script src="/assets/js/scale.fix.js"></script>
  </body>
</html>
"""
_NOT_FOUND = """
<style type="text/css" media="screen">
  .container {
    margin: 10px auto;
    max-width: 600px;
    text-align: center;
  }
  h1 {
    margin: 30px 0;
    font-size: 4em;
    line-height: 1;
    letter-spacing: -1px;
  }
</style>

<div class="container">
  <h1>404</h1>

  <p><strong>Page not found :(</strong></p>
  <p>The requested page could not be found.</p>
</div>
"""


def strip_html(text: str) -> str:
    """Liquid's ``strip_html``: drops scripts, comments, styles, then anything in ``<…>``."""
    return _TAG.sub("", _SCRIPT.sub("", text))


def escape_once(text: str) -> str:
    """Liquid's ``escape_once``: escapes markup but leaves existing entities alone."""
    text = _BARE_AMP.sub("&amp;", text)
    return (
        text.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#39;")
    )


def xml_escape(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "&#39;")


def _seo_text(text: str) -> str:
    return escape_once(_WS.sub(" ", strip_html(text)).strip())


def _iso(post: Post) -> str:
    return post.published_at.astimezone(SHANGHAI).isoformat()


def _seo(title: str | None, url: str, base_url: str, *, post: Post | None = None) -> str:
    """The jekyll-seo-tag v2.8.0 block."""
    seo_title = _seo_text(title) if title else SITE_TITLE
    full_title = f"{seo_title} | {SITE_TITLE}" if title else SITE_TITLE
    canonical = base_url + url
    description = ""
    if post is not None:
        description = _seo_text(post.body_html)[:160]
    lines = [
        "<!-- Begin Jekyll SEO tag v2.8.0 -->",
        f"<title>{full_title}</title>",
        '<meta name="generator" content="Jekyll v3.9.5" />',
        f'<meta property="og:title" content="{seo_title}" />',
        '<meta name="author" content="ZNing" />',
        '<meta property="og:locale" content="zh_CN" />',
    ]
    if description:
        lines.append(f'<meta name="description" content="{description}" />')
        lines.append(f'<meta property="og:description" content="{description}" />')
    lines += [
        f'<link rel="canonical" href="{canonical}" />',
        f'<meta property="og:url" content="{canonical}" />',
        f'<meta property="og:site_name" content="{SITE_TITLE}" />',
        f'<meta property="og:type" content="{"article" if post else "website"}" />',
    ]
    ld: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "BlogPosting" if post else "WebPage",
        "author": {"@type": "Person", "name": "ZNing"},
        "headline": seo_title,
        "url": canonical,
    }
    if post is not None:
        published = _iso(post)
        lines.append(f'<meta property="article:published_time" content="{published}" />')
        ld["datePublished"] = published
        ld["dateModified"] = published
        if description:
            ld["description"] = description
        ld["mainEntityOfPage"] = {"@type": "WebPage", "@id": canonical}
    lines += [
        '<meta name="twitter:card" content="summary" />',
        f'<meta property="twitter:title" content="{seo_title}" />',
        '<script type="application/ld+json">',
        json.dumps(ld, ensure_ascii=False) + "</script>",
        "<!-- End Jekyll SEO tag -->",
    ]
    return "\n".join(lines) + "\n"


def _page(
    title: str | None, url: str, content: str, base_url: str, post: Post | None = None
) -> bytes:
    """The site's ``default`` layout; ``content`` goes unescaped into og:description."""
    head = _HEAD_TOP.format(title=title or "", content=content, old_url=OLD_HOST + url)
    seo = _seo(title, url, base_url, post=post)
    return (head + seo + _HEAD_BOTTOM + content + _TAIL).encode("utf-8")


def post_content(post: Post) -> str:
    stamp = f"{post.published_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"
    return (
        f"\n<small>(GMT+8, Asia/Shanghai, CST) {stamp}</small>\n<h1>{post.title}</h1>\n\n"
        f"{post.body_html}\n  <small>tags: <em>{post.tag}</em></small>\n"
    )


def _newest_first(posts: Iterable[Post]) -> list[Post]:
    return sorted(posts, key=lambda p: (-p.published_at.timestamp(), p.id_raw))


def category_key(category: str) -> str:
    """The request path of a category page (spaces become %20, as in the site's links)."""
    return f"/category/{category.replace(' ', '%20')}.html"


def _category_content(posts: list[Post], *, blank_target: bool = False) -> str:
    target = ' target="_blank"' if blank_target else ""
    items = "".join(f'    <li><a href="{p.url_path}"{target}>{p.title}</a></li>\n' for p in posts)
    return f'\n<h2 id="">\n</h2>\n<ul>\n{items}</ul>\n'


def _home_content(posts: list[Post]) -> str:
    by_tag: dict[str, list[Post]] = {}
    for post in _newest_first(posts):
        by_tag.setdefault(post.tag, []).append(post)
    chunks = []
    for tag, tagged in by_tag.items():
        items = "".join(
            f'      <li><a href="{p.url_path}">{p.title}</a></li>\n' for p in tagged[:5]
        )
        chunks.append(f'  <h2 id="{tag}">{tag}</h2>\n  <ul>\n{items}  </ul>\n<hr />')
    return "\n".join(chunks)


def _feed(posts: list[Post], base_url: str) -> bytes:
    """jekyll-feed's Atom document: the 10 newest posts with full content, on one line."""
    newest = _newest_first(posts)[:10]
    updated = _iso(newest[0]) if newest else "2021-01-01T00:00:00+08:00"
    head = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" >'
        '<generator uri="https://jekyllrb.com/" version="3.9.5">Jekyll</generator>'
        f'<link href="{base_url}/feed.xml" rel="self" type="application/atom+xml" />'
        f'<link href="{base_url}/" rel="alternate" type="text/html" />'
        f"<updated>{updated}</updated><id>{base_url}/feed.xml</id>"
        f'<title type="html">{SITE_TITLE}</title><author><name>ZNing</name></author>'
    )
    entries = []
    for post in newest:
        url = base_url + post.url_path
        title = xml_escape(_WS.sub(" ", strip_html(post.title)).strip())
        terms = "".join(f'<category term="{xml_escape(c)}" />' for c in post.category.split())
        entries.append(
            f'<entry><title type="html">{title}</title><link href="{url}" rel="alternate" '
            f'type="text/html" title="{title}" /><published>{_iso(post)}</published>'
            f"<updated>{_iso(post)}</updated><id>{url}</id>"
            f'<content type="html" xml:base="{url}">{xml_escape(post.body_html.strip())}'
            f"</content><author><name>ZNing</name></author>{terms}</entry>"
        )
    return (head + "".join(entries) + "</feed>").encode("utf-8")


def render_site(
    posts: list[Post], *, base_url: str = "https://finews.withounder.com"
) -> dict[str, bytes]:
    """Every published path (as requested, %20 for spaces) mapped to the bytes served."""
    base_url = base_url.rstrip("/")
    site: dict[str, bytes] = {}
    for post in posts:
        site[post.url_path] = _page(post.title, post.url_path, post_content(post), base_url, post)
    site["/"] = _page("首页", "/", _home_content(posts), base_url)
    emnews = _newest_first(p for p in posts if p.category == vocab.EMNEWS_SLUG)
    site["/emnews/"] = _page(
        vocab.EMNEWS_TAG, "/emnews/", _category_content(emnews[:20], blank_target=True), base_url
    )
    tags: dict[str, str] = {}
    for post in posts:
        tags.setdefault(post.category, post.tag)
    for category, tag in sorted(tags.items()):
        # Jekyll splits "a b" into two categories, so a page looking up "a b" finds nothing.
        listed = _newest_first(p for p in posts if category in p.category.split())
        key = category_key(category)
        site[key] = _page(tag, key, _category_content(listed), base_url)
    site["/feed.xml"] = _feed(posts, base_url)
    site["/404.html"] = _page(None, "/404.html", _NOT_FOUND, base_url)
    return site
