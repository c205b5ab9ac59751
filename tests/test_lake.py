"""The lake itself: extensions from their wheels, commits retried on conflicts, one ``articles``
row per info_code with categories merged, deletes that stay deleted through compaction."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb
import pytest

from common.records import Article, ArticleBatch, ArticleRef
from warehouse import connect
from warehouse.lake import ALIAS, LakeError, commit, extension_file, open_writer
from warehouse.landing import Lander
from warehouse.maintenance import compact, table_files

NOW = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)


def _article(
    code: str, body: str, *, fetched_at: dt.datetime = NOW, category: str = "a"
) -> Article:
    return Article(
        info_code=code,
        info_code_raw=code,
        url=f"http://site/{category}/2026/11/26/{code}.html",
        category=category,
        title=f"title {code}",
        published_at=NOW,
        source="source",
        digest=None,
        body=body,
        source_url=None,
        content_hash=f"hash-{body}",
        fetched_at=fetched_at,
        extractor="test",
        extraction_path="region",
    )


def _ref(code: str, category: str) -> ArticleRef:
    return ArticleRef(
        url=f"http://site/{category}/2026/11/26/{code}.html",
        info_code=code,
        info_code_raw=code,
        category=category,
        listed_on=f"http://site/category/{category}.html",
    )


def _rows(root: Path, sql: str) -> list[tuple[object, ...]]:
    with connect(root) as session:
        return session.execute(sql).fetchall()


def test_a_missing_extension_is_one_line_naming_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        __import__("warehouse.lake", fromlist=["EXTENSIONS"]).EXTENSIONS,
        "ducklake",
        "no_such_package_finews",
    )
    with pytest.raises(LakeError) as error:
        extension_file("ducklake")
    message = str(error.value)
    assert "\n" not in message and "pip install" in message and "1.5.5" in message


def test_extensions_load_from_their_wheels() -> None:
    for name in ("ducklake", "sqlite_scanner"):
        path = extension_file(name)
        assert path.is_file() and f"v{duckdb.__version__}" in str(path)


def test_one_row_per_info_code_latest_version_categories_merged(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with open_writer(root) as session:
        lander = Lander(session, "run-1")
        lander.listing([], [], [_ref("1", "a"), _ref("2", "b")])  # listed before landing
        first = lander.batch(ArticleBatch((_article("1", "one"), _article("2", "two")), (), ()), {})
        assert (first.new, first.replaced) == (2, 0)
        later = NOW + dt.timedelta(hours=1)
        second = Lander(session, "run-2").batch(
            ArticleBatch((_article("1", "one, edited", fetched_at=later),), (), ()), {"1": ["c"]}
        )
        assert (second.new, second.replaced) == (0, 1)
        older = Lander(session, "run-3").batch(  # an older fetch never replaces a newer one
            ArticleBatch((_article("2", "stale", fetched_at=NOW - dt.timedelta(days=1)),), (), ()),
            {},
        )
        assert (older.new, older.replaced) == (0, 0)
        Lander(session, "run-4").listing([], [], [_ref("2", "d")])  # listed after landing
    rows = _rows(root, "SELECT info_code, body, categories FROM articles ORDER BY info_code")
    # its own category, the run's, and every category it was listed in, before or after landing
    assert rows == [("1", "one, edited", ["a", "c"]), ("2", "two", ["a", "b", "d"])]
    versions = _rows(root, "SELECT info_code, body FROM article_versions ORDER BY ALL")
    assert versions == [("1", "one"), ("1", "one, edited"), ("2", "two")]


def test_a_reextraction_lands_only_changed_bodies(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with open_writer(root) as session:
        Lander(session, "run-1").articles([_article("1", "one"), _article("2", "two")])
        landed = Lander(session, "run-2").articles(
            [_article("1", "one"), _article("2", "two, better")], only_changed=True
        )
    assert (landed.new, landed.replaced, landed.unchanged) == (0, 1, 1)
    assert _rows(root, "SELECT run_id FROM articles ORDER BY info_code") == [
        ("run-1",),
        ("run-2",),
    ]


def test_a_commit_that_loses_a_race_runs_again_and_lands_once(tmp_path: Path) -> None:
    """Two writers' transactions overlap: one commit conflicts, runs again, both land."""
    root = tmp_path / "lake"
    with open_writer(root) as first, open_writer(root) as second:
        inside = threading.Event()
        go_on = threading.Event()
        retries: list[int] = []

        def slow(session: duckdb.DuckDBPyConnection) -> None:
            session.execute(f"SELECT count(*) FROM {ALIAS}.articles").fetchall()
            Lander._append(session, "articles", [_row("slow")])
            if not inside.is_set():
                inside.set()
                go_on.wait(30)

        thread = threading.Thread(
            target=lambda: commit(
                first, slow, tag="slow", message="t", on_retry=lambda: retries.append(1)
            )
        )
        thread.start()
        assert inside.wait(30)
        commit(
            second, lambda s: Lander._append(s, "articles", [_row("fast")]), tag="f", message="t"
        )
        go_on.set()
        thread.join(60)
    assert retries, "the overlapping commit was retried"
    assert _rows(root, "SELECT info_code FROM articles ORDER BY 1") == [("fast",), ("slow",)]


def _row(code: str) -> dict[str, object]:
    from warehouse.rows import article_rows

    return article_rows([_article(code, code)], {}, "run")[0]


def test_replaced_rows_stay_replaced_through_compaction(tmp_path: Path) -> None:
    """Deletes, then a merge, then a read (a known DuckLake trap: rows coming back)."""
    root = tmp_path / "lake"
    with open_writer(root) as session:
        for index in range(6):
            batch = [
                _article(str(n), f"v{index}", fetched_at=NOW + dt.timedelta(minutes=index))
                for n in range(5)
            ]
            Lander(session, f"run-{index}").articles(batch)
        before = table_files(session)["articles"][0]
    report = compact(root, retention=dt.timedelta(days=7))
    assert report["articles"].files_before == before and report["articles"].files_after <= 2
    assert _rows(
        root, "SELECT count(*), count(DISTINCT info_code), min(body), max(body) FROM articles"
    ) == [(5, 5, "v5", "v5")]


def _age_snapshots(root: Path, up_to: int, age: dt.timedelta) -> None:
    """Make snapshots ``<= up_to`` look ``age`` old (the catalog's own column)."""
    import sqlite3

    when = (dt.datetime.now(dt.UTC) - age).strftime("%Y-%m-%d %H:%M:%S+00")
    with sqlite3.connect(root / "catalog.sqlite") as catalog:
        catalog.execute(
            "UPDATE ducklake_snapshot SET snapshot_time = ? WHERE snapshot_id <= ?", [when, up_to]
        )


def test_retention_bounds_time_travel(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with open_writer(root) as session:
        Lander(session, "run-1").articles([_article("1", "one")])
        old = session.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0]
        Lander(session, "run-2").articles([_article("2", "two")])
    _age_snapshots(root, old, dt.timedelta(days=10))
    compact(root, retention=dt.timedelta(days=30))  # kept: time travel reaches it
    with connect(root) as session:
        rows = session.execute(f"SELECT count(*) FROM articles AT (VERSION => {old})").fetchall()
        assert rows == [(1,)]
    compact(root, retention=dt.timedelta(days=7))  # expired: older than the retention
    with connect(root) as session:
        with pytest.raises(duckdb.Error):
            session.execute(f"SELECT count(*) FROM articles AT (VERSION => {old})").fetchall()
        assert session.execute("SELECT count(*) FROM articles").fetchall() == [(2,)]


def test_a_snapshot_younger_than_the_retention_is_kept(tmp_path: Path) -> None:
    """DuckLake 1.5.5 compares times as text on SQLite: without ``maintenance.cutoff`` a
    snapshot of the cutoff's own day expired up to a day early."""
    root = tmp_path / "lake"
    with open_writer(root) as session:
        Lander(session, "run-1").articles([_article("1", "one")])
        old = session.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()[0]
        Lander(session, "run-2").articles([_article("2", "two")])
    _age_snapshots(root, old, dt.timedelta(days=7, minutes=-2))
    compact(root, retention=dt.timedelta(days=7))
    with connect(root) as session:
        rows = session.execute(f"SELECT count(*) FROM articles AT (VERSION => {old})").fetchall()
    assert rows == [(1,)]


def test_compaction_deletes_a_killed_writers_orphans_and_nothing_else(tmp_path: Path) -> None:
    """A file in the data folder that no snapshot names (a writer killed mid-commit leaves
    them) goes once it is older than the grace; every file the lake uses stays, however old."""
    import os
    import shutil

    root = tmp_path / "lake"
    with open_writer(root) as session:
        Lander(session, "run-1").articles([_article("1", "one"), _article("2", "two")])
    folder = root / "data" / "main" / "articles"
    used = sorted(folder.glob("*.parquet"))
    orphan = folder / "ducklake-00000000-0000-0000-0000-000000000000.parquet"
    shutil.copy(used[0], orphan)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).timestamp()
    for path in [*used, orphan]:
        os.utime(path, (old, old))
    compact(root, retention=dt.timedelta(days=7))
    assert not orphan.exists()
    assert all(path.exists() for path in used)
    assert _rows(root, "SELECT count(*) FROM articles") == [(2,)]
