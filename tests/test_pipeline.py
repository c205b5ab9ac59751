"""End to end: the replica on loopback → the crawl flow under Prefect → Parquet → DuckDB."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from flows.crawl import backfill, crawl
from flows.runner import run_flow
from replica.posts import Post
from replica.server import ReplicaServer
from tests.quality import bigram_f1, boilerplate_in
from warehouse import connect
from warehouse.lake import DATA_FOLDER, open_writer

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _reextract(
    server: ReplicaServer, warehouse: Path, categories: list[str] | None = None
) -> dict[str, object]:
    """``finews backfill --reextract`` (of emnews unless told): stored raw pages only."""
    return run_flow(
        backfill,
        categories=categories or ["emnews"],
        reextract=True,
        site=server.base_url,
        warehouse=str(warehouse),
        rps=0,
    )


def _edit_raw_page(warehouse: Path, post: Post, category: str | None = None) -> None:
    """Rewrite ``post``'s stored raw page in the lake: "补充：" before its text (so it extracts
    differently), and its stored category replaced when ``category`` is given."""
    text = post.expected_text[:10].encode()
    session = open_writer(warehouse)
    try:
        stored = session.execute(
            "SELECT DISTINCT content FROM raw_pages WHERE info_code = ?", [post.info_code]
        ).fetchall()
        assert stored, f"no raw page stored for {post.info_code}"
        session.execute("BEGIN")
        for (content,) in stored:
            assert text in content, "the edit changes the stored page"
            session.execute(
                "UPDATE raw_pages SET content = ?, category = coalesce(?, category) "
                "WHERE info_code = ? AND content = ?",
                [
                    content.replace(text, "补充：".encode() + text),
                    category,
                    post.info_code,
                    content,
                ],
            )
        session.execute("COMMIT")
    finally:
        session.close()


def _query(warehouse: Path, sql: str) -> list[tuple[object, ...]]:
    with connect(warehouse) as connection:
        return connection.execute(sql).fetchall()


def _article_files(warehouse: Path) -> list[str]:
    """The files of the ``articles`` table (any change to it writes a data or delete file)."""
    return sorted(p.name for p in (warehouse / DATA_FOLDER / "main" / "articles").glob("*.parquet"))


def _twin_categories(posts: list[Post]) -> list[str]:
    """emnews plus the outlet of a story published in both forms, plus one more outlet."""
    by_code: dict[str, list[Post]] = {}
    for post in posts:
        by_code.setdefault(post.info_code, []).append(post)
    twin = next(group for group in by_code.values() if len(group) == 2)
    outlet = next(p.category for p in twin if p.category != "emnews")
    other = next(
        p.category for p in posts if p.category not in ("emnews", outlet) and " " not in p.category
    )
    return ["emnews", outlet, other]


def test_crawl_lands_every_listed_article_once(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    categories = _twin_categories(posts)
    expected = {p.info_code: p for p in posts if p.category in categories}
    report = run_flow(
        crawl, categories=categories, site=server.base_url, warehouse=str(warehouse), rps=0
    )

    assert report["failures"] == 0
    assert report["categories_listed"] == 3
    rows = _query(
        warehouse,
        "SELECT info_code, info_code_raw, title, published_at, body, categories, source, "
        "digest, source_url FROM articles",
    )
    codes = [row[0] for row in rows]
    assert Counter(codes).most_common(1)[0][1] == 1, "one row per info_code"
    assert set(codes) == set(expected), "coverage of the listed category pages"
    assert report["new_articles"] == len(expected)

    twins = [row for row in rows if len(row[5]) > 1]
    assert twins, "a story listed in emnews and its outlet keeps both categories"
    for code, raw, title, published_at, body, cats, source, digest, source_url in rows:
        post = next(p for p in posts if p.info_code == code and p.id_raw == raw)
        assert title == post.title
        assert published_at == post.published_at
        assert published_at.utcoffset() is not None
        assert bigram_f1(body, post.expected_text) >= 0.98, code
        assert boilerplate_in(body, post.expected_text) == [], code
        assert digest == post.digest
        assert source_url == post.source_url
        assert source == post.source_name or (post.source_name is None and source)
        assert post.category in cats


def test_second_identical_run_lands_nothing(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    categories = _twin_categories(posts)
    first = run_flow(
        crawl, categories=categories, site=server.base_url, warehouse=str(warehouse), rps=0
    )
    files_before = _article_files(warehouse)
    requests_before = len(server.requests)
    second = run_flow(
        crawl, categories=categories, site=server.base_url, warehouse=str(warehouse), rps=0
    )

    assert first["new_articles"] > 0
    assert second["new_articles"] == 0
    assert second["duplicates_skipped"] == second["refs_seen"]
    assert files_before and _article_files(warehouse) == files_before
    article_hits = [
        path
        for _, path, _ in server.requests[requests_before:]
        if path.endswith(".html") and not path.startswith("/category/")
    ]
    assert article_hits == [], "a run with nothing new fetches no article page"
    assert _query(warehouse, "SELECT count(*) FROM articles") == [(first["new_articles"],)]
    assert _query(warehouse, "SELECT count(*), sum(new_articles) FROM runs") == [
        (2, first["new_articles"])
    ]


def test_all_discovers_categories_from_the_home_page(
    posts: list[Post], site: dict[str, bytes], server: ReplicaServer, warehouse: Path
) -> None:
    report = run_flow(
        crawl, categories=["all"], site=server.base_url, warehouse=str(warehouse), rps=0
    )
    listed = {p.info_code for p in posts if " " not in p.category}
    home = site["/"].decode()
    reachable_by_home = {p.info_code for p in posts if p.url_path in home}
    landed = {row[0] for row in _query(warehouse, "SELECT info_code FROM articles")}

    assert report["failures"] == 0
    assert listed | reachable_by_home <= landed
    spaced = [p for p in posts if " " in p.category and p.url_path in home]
    assert spaced, "the replica has a category with a space on the home page"
    assert {p.info_code for p in spaced} <= landed
    assert _query(warehouse, "SELECT count(*) - count(DISTINCT info_code) FROM articles") == [(0,)]


def test_one_broken_page_is_recorded_and_the_rest_land(
    posts: list[Post], site: dict[str, bytes], warehouse: Path
) -> None:
    victim = next(p for p in posts if p.category == "emnews")
    broken = dict(site)
    broken[victim.url_path] = b"<html><body><p></p></body></html>"
    gone = next(p for p in posts if p.category == "emnews" and p is not victim)
    del broken[gone.url_path]
    with ReplicaServer(broken) as server:
        report = run_flow(
            crawl, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0
        )

    expected = {p.info_code for p in posts if p.category == "emnews"}
    landed = {row[0] for row in _query(warehouse, "SELECT info_code FROM articles")}
    assert landed == expected - {victim.info_code, gone.info_code}
    assert report["failures"] == 2
    failures = dict(_query(warehouse, "SELECT info_code, stage FROM failures"))
    assert failures == {victim.info_code: "extract", gone.info_code: "fetch"}
    assert _query(warehouse, "SELECT status FROM runs") == [("completed_with_failures",)]


def test_backfill_respects_the_date_range_and_refetch(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    emnews = [p for p in posts if p.category == "emnews"]
    days = sorted({p.published_at.date() for p in emnews})
    day = days[len(days) // 2]
    report = run_flow(
        backfill,
        categories=["emnews"],
        since=day,
        until=day,
        site=server.base_url,
        warehouse=str(warehouse),
        rps=0,
    )
    expected = {p.info_code for p in emnews if p.published_at.date() == day}
    landed = {row[0] for row in _query(warehouse, "SELECT info_code FROM articles")}
    assert landed == expected
    assert report["new_articles"] == len(expected)

    again = run_flow(
        backfill,
        categories=["emnews"],
        since=day,
        until=day,
        refetch=True,
        site=server.base_url,
        warehouse=str(warehouse),
        rps=0,
    )
    assert again["new_articles"] == 0
    assert again["new_versions"] == len(expected)
    assert _query(warehouse, "SELECT count(*) FROM articles") == [(len(expected),)]
    assert _query(warehouse, "SELECT count(*) FROM article_versions") == [(len(expected),)]


def test_a_changed_body_becomes_a_new_version(
    posts: list[Post], site: dict[str, bytes], warehouse: Path
) -> None:
    target = next(p for p in posts if p.category == "emnews" and len(p.expected_text) > 200)
    with ReplicaServer(site) as server:
        run_flow(
            crawl, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0
        )
        changed = dict(site)
        changed[target.url_path] = site[target.url_path].replace(
            target.expected_text[:20].encode(),
            "更正：".encode() + target.expected_text[:20].encode(),
        )
        server.update(changed)
        run_flow(
            backfill,
            categories=["emnews"],
            refetch=True,
            site=server.base_url,
            warehouse=str(warehouse),
            rps=0,
        )
    versions = _query(
        warehouse,
        f"SELECT count(*) FROM article_versions WHERE info_code = '{target.info_code}'",
    )
    assert versions == [(2,)]
    current = _query(warehouse, f"SELECT body FROM articles WHERE info_code = '{target.info_code}'")
    assert len(current) == 1 and "更正：" in str(current[0][0])


def test_bad_parameters_fail_before_any_fetch(server: ReplicaServer, warehouse: Path) -> None:
    from tasks.settings import SettingsError

    with pytest.raises(SettingsError, match="'rps'"):
        run_flow(
            crawl, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=-1
        )
    with pytest.raises(ValueError, match="after"):
        run_flow(
            backfill,
            categories=["emnews"],
            since=dt.date(2022, 6, 2),
            until=dt.date(2022, 6, 1),
            site=server.base_url,
            warehouse=str(warehouse),
        )
    assert server.requests == []


def test_backfill_twice_lands_nothing_and_reextract_makes_no_request(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    emnews = {p.info_code for p in posts if p.category == "emnews"}
    first = run_flow(
        backfill, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0
    )
    second = run_flow(
        backfill, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0
    )
    assert first["new_articles"] == len(emnews)
    assert (second["new_articles"], second["new_versions"], second["failures"]) == (0, 0, 0)

    raw = _query(
        warehouse, "SELECT count(DISTINCT info_code), min(octet_length(content)) FROM raw_pages"
    )
    assert raw[0][0] == len(emnews) and raw[0][1] > 1000, "every fetched page is kept, whole"
    requests_before = len(server.requests)
    again = _reextract(server, warehouse)
    assert len(server.requests) == requests_before, "re-extraction reads stored pages only"
    assert (again["unchanged"], again["new_versions"], again["failures"]) == (len(emnews), 0, 0)
    assert _query(warehouse, "SELECT count(*) FROM article_versions") == [(len(emnews),)]


def test_reextract_lands_a_new_version_when_the_stored_page_extracts_differently(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    """A newer extractor is simulated by editing one stored raw page in place."""
    run_flow(crawl, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0)
    target = next(p for p in posts if p.category == "emnews" and len(p.expected_text) > 100)
    _edit_raw_page(warehouse, target)
    report = _reextract(server, warehouse)
    assert report["new_versions"] == 1
    body = _query(
        warehouse, f"SELECT body, extractor FROM articles WHERE info_code = '{target.info_code}'"
    )
    assert "补充：" in body[0][0] and "trafilatura/" in body[0][1]
    assert _query(
        warehouse, f"SELECT count(*) FROM article_versions WHERE info_code = '{target.info_code}'"
    ) == [(2,)]


def test_a_home_page_post_keeps_its_exact_category_through_reextraction(
    posts: list[Post], server: ReplicaServer, warehouse: Path
) -> None:
    """A post found on the home page is listed under the category its URL path suggests
    ("caixin"); its back-link names the exact one ("CaiXin"), which the row, its stored raw page
    and any re-extraction keep, even of a raw page stored with the guess."""
    from common.links import post_categories

    run_flow(crawl, categories=["all"], site=server.base_url, warehouse=str(warehouse), rps=0)
    guessed = [p for p in posts if post_categories(p.url_path) != [p.category]]
    exact = {p.info_code: p.category for p in guessed}
    assert guessed, "the replica has posts whose URL path spells the category otherwise"
    landed = dict(_query(warehouse, "SELECT info_code, category FROM articles"))
    assert {code: landed.get(code) for code in exact} == exact
    stored = dict(_query(warehouse, "SELECT info_code, category FROM raw_pages"))
    assert {code: stored.get(code) for code in exact} == exact

    target = next(p for p in guessed if len(p.expected_text) > 100)
    _edit_raw_page(warehouse, target, category=" ".join(post_categories(target.url_path) or []))
    report = _reextract(server, warehouse, ["all"])
    assert report["new_versions"] == 1
    assert (
        _query(
            warehouse, f"SELECT category, body FROM articles WHERE info_code = '{target.info_code}'"
        )[0][0]
        == target.category
    )


def test_pages_without_a_usable_date_keep_a_null_and_a_flag(
    posts: list[Post], site: dict[str, bytes], warehouse: Path
) -> None:
    target = next(p for p in posts if p.category == "emnews")
    stamp = target.published_at.strftime("%Y-%m-%d %H:%M:%S")
    page = site[target.url_path].decode()
    page = page.replace(stamp, "2022-13-45 99:99:99").replace("article:published_time", "x")
    page = page.replace('"datePublished"', '"x"')
    with ReplicaServer({**site, target.url_path: page.encode()}) as server:
        run_flow(
            crawl, categories=["emnews"], site=server.base_url, warehouse=str(warehouse), rps=0
        )
    rows = dict(_query(warehouse, "SELECT info_code, published_at_source FROM articles"))
    assert rows[target.info_code] == "missing"
    assert _query(
        warehouse, f"SELECT published_at FROM articles WHERE info_code = '{target.info_code}'"
    ) == [(None,)]
    assert set(rows.values()) == {"page", "missing"}
