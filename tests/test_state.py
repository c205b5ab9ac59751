"""What the lake already holds, as a crawl asks it: exact, however old the lake is.

The known-id check is a semi-join against every article ever landed (there is no date window
any more), and stored raw pages are read back newest first per article.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from common.records import Article, ArticleBatch, ArticleRef, FetchResult
from flows.crawl import crawl
from flows.runner import run_flow
from replica.posts import SHANGHAI, Post, generate_posts
from replica.render import render_site
from replica.server import ReplicaServer
from warehouse import connect
from warehouse.lake import open_reader, open_writer
from warehouse.landing import Lander
from warehouse.rawstore import iter_raw_pages
from warehouse.state import known_refs

SITE = "http://h"
HALF_YEAR = 180  # days of posts on the replica
NOW = dt.datetime(2024, 3, 1, 12, tzinfo=SHANGHAI)


# ---------------------------------------------------------------------------------------------
# a replica whose posts span six months


def _is_post(path: str) -> bool:
    return path.endswith(".html") and not path.startswith("/category/") and path != "/404.html"


def _day(post: Post) -> dt.date:
    return post.published_at.astimezone(SHANGHAI).date()


@pytest.mark.usefixtures("prefect_harness")
def test_a_crawl_over_six_months_of_posts_fetches_each_post_once(tmp_path: Path) -> None:
    """Posts published over half a year: a second identical crawl fetches no article page.

    Both runs are ``full`` so the second one reads the category pages again (an incremental
    run would get 304s and see no reference at all): every reference it sees, however old, must
    be found in the lake. Then one new post appears and an incremental run fetches it alone.
    """
    posts = generate_posts(160, seed=7, n_categories=5, now=NOW, window_days=HALF_YEAR)
    categories = ["emnews", *sorted({p.category for p in posts} - {"emnews"})[:2]]
    listed = [p for p in posts if p.category in categories]
    codes = [p.info_code for p in posts]
    late = max(
        (p for p in listed if p.category == "emnews" and codes.count(p.info_code) == 1),
        key=lambda p: p.published_at,
    )
    first_site = [p for p in posts if p is not late]
    expected = {p.info_code for p in listed if p is not late}
    days = sorted(_day(p) for p in listed if p is not late)
    assert (days[-1] - days[0]).days >= 150, "the posts span about six months"
    old = [day for day in days if (days[-1] - day).days > 14]
    assert len(old) >= 0.8 * len(days), "most posts are older than a fortnight"

    warehouse = tmp_path / "wh"
    with ReplicaServer(render_site(first_site)) as server:
        params = {
            "categories": categories,
            "site": server.base_url,
            "warehouse": str(warehouse),
            "rps": 0,
        }
        first = run_flow(crawl, **params, full=True)
        before = len(server.requests)
        second = run_flow(crawl, **params, full=True)
        second_paths = [path for _, path, _ in server.requests[before:]]

        server.update(render_site(posts))  # one new post, on the emnews page
        before = len(server.requests)
        third = run_flow(crawl, **params)
        third_paths = [path for _, path, _ in server.requests[before:]]

    assert first["failures"] == 0 and first["new_articles"] == len(expected)
    with connect(warehouse) as connection:
        landed = connection.execute("SELECT info_code FROM articles").fetchall()
    assert sorted(code for (code,) in landed) == sorted(expected | {late.info_code})

    assert second["failures"] == 0 and second["categories_listed"] == len(categories)
    assert second["refs_seen"] >= len(expected), "the second run read every reference again"
    assert [p for p in second_paths if _is_post(p)] == [], "no article page fetched again"
    assert second["new_articles"] == 0 and second["new_versions"] == 0
    assert second["duplicates_skipped"] == second["refs_seen"]

    assert third["failures"] == 0 and third["new_articles"] == 1
    assert [p for p in third_paths if _is_post(p)] == [late.url_path]
    assert "/category/emnews.html" in third_paths


# ---------------------------------------------------------------------------------------------
# known_refs: exact, by info_code or by URL


def _article(code: str, url: str, body: str, published: dt.datetime) -> Article:
    return Article(
        info_code=code,
        info_code_raw=code,
        url=url,
        category="a",
        title="标题",
        published_at=published,
        source=None,
        digest=None,
        body=body,
        source_url=None,
        content_hash=f"hash-{body}",
        fetched_at=published + dt.timedelta(hours=1),
        extractor="test",
        extraction_path="test",
    )


def _ref(code: str, url: str, category: str = "a") -> ArticleRef:
    return ArticleRef(url, code, code, category, f"{SITE}/category/{category}.html")


OLD_URL = f"{SITE}/a/2021/01/01/1.html"
MOVED_FROM = f"{SITE}/a/2024/02/28/2.html"
MOVED_TO = f"{SITE}/b/2024/02/28/2.html"


@pytest.fixture(scope="module")
def landed_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Article 1 landed three years before the rest; article 2 landed twice, at two URLs."""
    root = tmp_path_factory.mktemp("known") / "wh"
    session = open_writer(root)
    try:
        old = dt.datetime(2021, 1, 1, 9, tzinfo=SHANGHAI)
        recent = dt.datetime(2024, 2, 28, 9, tzinfo=SHANGHAI)
        Lander(session, "r1").articles([_article("1", OLD_URL, "旧文", old)])
        Lander(session, "r2").articles([_article("2", MOVED_FROM, "初稿", recent)])
        later = recent + dt.timedelta(days=1)
        Lander(session, "r3").articles([_article("2", MOVED_TO, "更正", later)])
    finally:
        session.close()
    return root


@pytest.mark.parametrize("opener", [open_writer, open_reader], ids=["writer", "reader"])
def test_known_refs_finds_landed_ids_and_urls_however_old(
    landed_lake: Path, opener: Callable[[Path], duckdb.DuckDBPyConnection]
) -> None:
    by_code = _ref("1", f"{SITE}/c/2021/01/01/1.html")  # an old post listed at a new URL
    by_url = _ref("NW2", MOVED_FROM)  # a URL of an earlier version, under another id
    current = _ref("2", MOVED_TO)
    unknown = _ref("3", f"{SITE}/a/2024/03/01/3.html")
    session = opener(landed_lake)
    try:
        known = known_refs(session, [by_code, by_url, current, unknown, by_code])
        assert known_refs(session, []) == type(known)()
        assert known_refs(session, [unknown]).info_codes == frozenset()
    finally:
        session.close()
    assert known.info_codes == {"1", "2"}
    assert known.urls == {MOVED_FROM, MOVED_TO}
    assert [known.has(ref) for ref in (by_code, by_url, current, unknown)] == [
        True,
        True,
        True,
        False,
    ]


# ---------------------------------------------------------------------------------------------
# iter_raw_pages: the newest stored page per article, by category and publication day


def _stored(
    code: str, path: str, category: str, content: bytes, fetched: dt.datetime
) -> tuple[ArticleRef, FetchResult]:
    url = SITE + path
    result = FetchResult(
        url=url,
        final_url=url,
        status=200,
        content=content,
        content_type="text/html; charset=utf-8",
        elapsed_s=0.01,
        attempts=1,
        fetched_at=fetched,
    )
    return _ref(code, url, category), result


def _day_at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def raw_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """Five articles' raw pages over three runs; A and B were fetched twice (read only: one
    lake for the module's tests)."""
    root = tmp_path_factory.mktemp("raw") / "wh"
    runs = {
        # the newer fetch of A lands first: newest is by fetch time, not by landing order
        "r1": [
            _stored("A", "/a/2024/03/01/A.html", "a", b"A new", _day_at(5)),
            _stored("B", "/a/2024/03/02/B.html", "a", b"B r1", _day_at(4)),
            _stored("C", "/b/2024/03/03/C.html", "b", b"C", _day_at(4)),
        ],
        "r2": [
            _stored("A", "/a/2024/03/01/A.html", "a", b"A old", _day_at(2)),
            _stored("B", "/a/2024/03/02/B.html", "a", b"B r2", _day_at(4)),  # a tie: r2 wins
            _stored("D", "/a/2024/02/01/D.html", "a", b"D", _day_at(3)),
        ],
        "r3": [_stored("E", "/a/E.html", "a", b"E", _day_at(3))],  # no date in its URL
    }
    session = open_writer(root)
    try:
        for run_id, pages in runs.items():
            Lander(session, run_id).batch(ArticleBatch((), (), (), tuple(pages)), {})
    finally:
        session.close()
    reader = open_reader(root)
    try:
        yield reader
    finally:
        reader.close()


def _read(
    session: duckdb.DuckDBPyConnection,
    categories: list[str] | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    batch_size: int = 10,
) -> tuple[int, list[list[tuple[ArticleRef, FetchResult]]]]:
    pages = iter_raw_pages(
        session, categories=categories, since=since, until=until, batch_size=batch_size
    )
    return pages.total, list(pages)


def _contents(batches: list[list[tuple[ArticleRef, FetchResult]]]) -> dict[str, bytes]:
    pairs = [(ref.info_code, result.content) for batch in batches for ref, result in batch]
    assert len(pairs) == len(dict(pairs)), "one page per article"
    return dict(pairs)


def test_raw_pages_are_the_newest_per_article(raw_lake: duckdb.DuckDBPyConnection) -> None:
    total, batches = _read(raw_lake)
    assert _contents(batches) == {"A": b"A new", "B": b"B r2", "C": b"C", "D": b"D", "E": b"E"}
    assert total == 5
    (ref, result), *_ = batches[0]
    assert (ref.info_code, ref.info_code_raw, ref.category) == ("A", "A", "a")
    assert ref.url == result.url == result.final_url == f"{SITE}/a/2024/03/01/A.html"
    assert result.fetched_at == _day_at(5) and result.ok


@pytest.mark.parametrize(
    ("categories", "since", "until", "expected"),
    [
        (["a"], None, None, {"A": b"A new", "B": b"B r2", "D": b"D", "E": b"E"}),
        (["b"], None, None, {"C": b"C"}),
        (["a"], dt.date(2024, 3, 1), dt.date(2024, 3, 2), {"A": b"A new", "B": b"B r2"}),
        (["a", "b"], dt.date(2024, 3, 2), None, {"B": b"B r2", "C": b"C"}),
        (None, None, dt.date(2024, 2, 29), {"D": b"D"}),
        (["c"], None, None, {}),
    ],
)
def test_raw_pages_are_filtered_by_category_and_day(
    raw_lake: duckdb.DuckDBPyConnection,
    categories: list[str] | None,
    since: dt.date | None,
    until: dt.date | None,
    expected: dict[str, bytes],
) -> None:
    """The day is the one in the post's URL; a URL without one is outside any date range."""
    total, batches = _read(raw_lake, categories, since, until)
    assert _contents(batches) == expected
    assert total == len(expected), "counted before iterating, as they are yielded"


def test_raw_pages_come_in_batches(raw_lake: duckdb.DuckDBPyConnection) -> None:
    total, batches = _read(raw_lake, batch_size=2)
    assert [len(batch) for batch in batches] == [2, 2, 1] and total == 5
    total, batches = _read(raw_lake, since=dt.date(2024, 3, 1), batch_size=1)
    assert [len(batch) for batch in batches] == [1, 1, 1] and total == 3
