"""Incremental crawling: cheap signals first, category pages only when they may hold news."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from common.records import ArticleRef
from flows.crawl import crawl
from flows.runner import run_flow
from replica.faults import FaultPlan
from replica.posts import Post, generate_posts
from replica.server import ReplicaServer
from replica.timeline import Timeline
from tasks.planning import ListingCheck, overflowing_groups, stalest
from warehouse import connect

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
LISTING_ATTEMPTS = 5  # as the listing_retry_queue view counts them


def _ref(code: int) -> ArticleRef:
    raw = f"2022060100{code:08d}"
    return ArticleRef(f"http://h/a/2022/06/01/{raw}.html", raw, raw, "a", "http://h/")


def test_only_groups_whose_oldest_home_post_is_new_overflow() -> None:
    known = {_ref(1).info_code}
    full_known_oldest = ("A新闻", [_ref(i) for i in (5, 4, 3, 2, 1)])
    full_new_oldest = ("B新闻", [_ref(i) for i in (15, 14, 13, 12, 11)])
    short = ("C新闻", [_ref(21), _ref(22)])
    result = overflowing_groups(
        [full_known_oldest, full_new_oldest, short], lambda ref: ref.info_code in known
    )
    assert [tag for tag, _ in result] == ["B新闻"]


def test_sweep_takes_the_stalest_share() -> None:
    t0 = dt.datetime(2022, 6, 1, tzinfo=dt.UTC)
    checks = {f"u{i}": ListingCheck(f"u{i}", t0 + dt.timedelta(minutes=i)) for i in range(40)}
    assert stalest(checks, 0.05, exclude=set()) == ["u0", "u1"]
    assert stalest(checks, 0.05, exclude={"u0"}) == ["u1", "u2"]
    assert stalest(checks, 0.0, exclude=set()) == []


def _articles(warehouse: Path) -> list[str]:
    with connect(warehouse) as connection:
        return [row[0] for row in connection.execute("SELECT info_code FROM articles").fetchall()]


def _stored_pages(warehouse: Path) -> Counter[str]:
    """info_code → raw pages stored for it: one per time it was fetched and landed."""
    with connect(warehouse) as connection:
        rows = connection.execute("SELECT info_code, count(*) FROM raw_pages GROUP BY 1")
        return Counter(dict(rows.fetchall()))


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_where_nothing_changed_fetches_no_article(
    site: dict[str, bytes], warehouse: Path
) -> None:
    with ReplicaServer(site) as server:
        first = run_flow(crawl, site=server.base_url, warehouse=str(warehouse), rps=0)
        before = len(server.requests)
        second = run_flow(crawl, site=server.base_url, warehouse=str(warehouse), rps=0)
        paths = [path for _, path, _ in server.requests[before:]]
    assert first["new_articles"] > 0 and first["failures"] == 0
    assert second["new_articles"] == 0
    assert [p for p in paths if p.endswith(".html") and "/category/" not in p] == []
    categories = [p for p in paths if "/category/" in p]
    assert 1 <= len(categories) <= 2, "only the safety sweep re-checks category pages"
    assert second["not_modified"] >= 1, "home/feed/category pages are asked conditionally"


@pytest.mark.usefixtures("prefect_harness")
def test_rolling_window_captures_every_post_ever_live(tmp_path: Path) -> None:
    """Posts appear and expire as the site moves on; runs every 4 h must capture them all.

    "All" is every post some listing page (home, feed, a category page) showed at some point:
    a post of a category with a space beyond its outlet's 5 newest is on no page at all.
    """
    end = dt.datetime(2022, 6, 8, 12, tzinfo=SHANGHAI)
    pool = generate_posts(700, seed=11, n_categories=24, now=end, window_days=6)
    timeline = Timeline(pool)
    start = end - dt.timedelta(days=3)
    steps = [start + dt.timedelta(hours=4 * i) for i in range(19)]
    warehouse = tmp_path / "wh"
    ever_listed: set[str] = set()
    category_requests: list[int] = []
    live_categories: list[int] = []
    article_requests: Counter[str] = Counter()
    with ReplicaServer(timeline.site_at(steps[0])) as server:
        for at in steps:
            site = timeline.site_at(at)
            server.update(site)
            live = timeline.live(at)
            ever_listed |= _listed(live, site)
            before = len(server.requests)
            report = run_flow(crawl, site=server.base_url, warehouse=str(warehouse), rps=0)
            assert report["failures"] == 0
            paths = [path for _, path, _ in server.requests[before:]]
            category_requests.append(sum("/category/" in p for p in paths))
            live_categories.append(len({p.category for p in live}))
            article_requests.update(p for p in paths if _is_post(p))
    landed = _articles(warehouse)
    assert Counter(landed).most_common(1)[0][1] == 1
    assert _stored_pages(warehouse) == Counter(set(landed)), "each post landed exactly once"
    assert set(landed) == ever_listed, f"missed {len(ever_listed - set(landed))} posts"
    assert max(article_requests.values()) == 1, "no article page fetched twice"
    later_runs = slice(1, None)  # the first run lists every category page once
    budget = sum(category_requests[later_runs]) / sum(live_categories[later_runs])
    assert budget <= 0.25, f"category pages per run / live categories = {budget:.2f}"


FAST_RETRIES = "retries = 1\nbackoff_base = 0.01\n"


def _category_pages(site: dict[str, bytes]) -> dict[str, str]:
    return {path: "always_503" for path in site if path.startswith("/category/")}


@pytest.mark.usefixtures("prefect_harness")
def test_a_category_page_whose_listing_failed_is_listed_by_the_next_run(
    posts: list[Post], site: dict[str, bytes], tmp_path: Path
) -> None:
    """Every category page answers 503 during one run: the next run lists them, nothing is lost.

    The first run lands the home page's posts, so its plan no longer needs those category
    pages, and the sweep knows only pages that listed once: only the failure brings them back.
    """
    config = tmp_path / "finews.toml"
    config.write_text(FAST_RETRIES)
    warehouse = tmp_path / "wh"
    plan = FaultPlan(0, {}, pinned=_category_pages(site))
    with ReplicaServer(site, faults=plan) as server:
        params = {"site": server.base_url, "warehouse": str(warehouse), "rps": 0}
        first = run_flow(crawl, **params, config_file=str(config))
        failed = {path for _, path, status in server.requests if status == 503}
        plan.pinned.clear()  # the site recovers
        before = len(server.requests)
        second = run_flow(crawl, **params, config_file=str(config))
        asked = {path for _, path, _ in server.requests[before:] if "/category/" in path}
    assert failed and first["failures"] == len(failed), "some category pages failed"
    assert len(_articles(warehouse)) > first["new_articles"]
    assert failed <= asked, "the second run lists every page whose listing failed"
    assert second["failures"] == 0 and second["retried"] == len(failed)
    assert set(_articles(warehouse)) == _listed(posts, site), "nothing lost"


@pytest.mark.usefixtures("prefect_harness")
def test_a_category_page_is_listed_again_until_it_failed_five_times_in_a_row(
    site: dict[str, bytes], tmp_path: Path
) -> None:
    config = tmp_path / "finews.toml"
    config.write_text(FAST_RETRIES)
    warehouse = tmp_path / "wh"
    plan = FaultPlan(0, {}, pinned=_category_pages(site))
    asked: list[int] = []
    with ReplicaServer(site, faults=plan) as server:
        params = {"site": server.base_url, "warehouse": str(warehouse), "rps": 0}
        for run in range(LISTING_ATTEMPTS + 1):
            before = len(server.requests)
            run_flow(crawl, **params, config_file=str(config))
            if run == 0:  # one page keeps failing, the others recover
                page = min(path for _, path, status in server.requests if status == 503)
                plan.pinned = {page: "always_503"}
            asked.append(sum(path == page for _, path, _ in server.requests[before:]))
    assert asked == [2] * LISTING_ATTEMPTS + [0], "1 + 1 retry a run, 5 runs, then no more"


def _is_post(path: str) -> bool:
    return path.endswith(".html") and not path.startswith("/category/") and path != "/404.html"


def _listed(live: list[Post], site: dict[str, bytes]) -> set[str]:
    """Ids of the live posts some listing page links to."""
    listings = b"".join(
        body for path, body in site.items() if path in ("/", "/feed.xml") or "/category/" in path
    ).decode()
    return {p.info_code for p in live if p.url_path in listings}
