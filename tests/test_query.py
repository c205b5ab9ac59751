"""``finews sql`` and the lake as readers see it: the read-only sandbox, time travel, readers
that outlive a compaction, and a plain DuckDB that attaches the catalog with no finews code."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pytest

import warehouse as lake_api
from common.records import Article, Failure
from warehouse.lake import LakeError, ensure_lake, extension_file, open_writer
from warehouse.landing import Lander
from warehouse.maintenance import compact
from warehouse.query import QueryRefused, run_query
from warehouse.schema import TABLES, VIEWS

FINEWS = [sys.executable, "-m", "flows.cli"]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SITE = "http://h"
# What the lake built by the ``lake`` fixture holds, per table and view.
COUNTS = {
    "articles": 3,
    "article_versions": 4,
    "runs": 2,
    "failures": 3,
    "retry_queue": 1,
    "dead_pages": 1,
    "listing_retry_queue": 1,
}


def _article(code: str, body: str, fetched: dt.datetime, category: str) -> Article:
    return Article(
        info_code=code,
        info_code_raw="NW" + code,
        url=f"{SITE}/{category}/2022/05/31/NW{code}.html",
        category=category,
        title="标题",
        published_at=dt.datetime(2022, 5, 31, 18, 3, 41, tzinfo=SHANGHAI),
        source="财联社",
        digest=None,
        body=body,
        source_url=None,
        content_hash=f"hash-{body}",
        fetched_at=fetched,
        extractor="x",
        extraction_path="region",
    )


def _land(
    root: Path,
    run_id: str,
    articles: Iterable[Article],
    failures: Sequence[Failure] = (),
) -> int:
    """One run landed as a crawl lands it: a commit per article (small files), then the
    failures, then its ``runs`` row; returns the snapshot the run ends at."""
    session = open_writer(root)
    try:
        lander = Lander(session, run_id)
        landed = [lander.articles([article]) for article in articles]
        lander.failures(failures)
        summary = {
            "run_id": run_id,
            "flow": "crawl",
            "status": "completed",
            "site": SITE,
            "started_at": T0,
            "finished_at": T0,
            "new_articles": sum(entry.new for entry in landed),
            "failures": len(failures),
        }
        return lander.finish([], summary)
    finally:
        session.close()


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime). SQLite's shared-memory index
    (``catalog.sqlite-shm``) is rewritten by every reader by design: only its size counts; a
    write to the catalog would show in ``catalog.sqlite`` or its (empty) ``-wal``."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            stat = path.stat()
            shm = path.name.endswith("-shm")
            found[str(path.relative_to(root))] = (stat.st_size, 0 if shm else stat.st_mtime_ns)
    return found


def _finews(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINEWS, *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs: r1 lands articles 1 and 2 and three failures (one for each queue), r2 a new
    body of 1 (listed in another category, then fetched again unchanged) and article 3."""
    root = tmp_path_factory.mktemp("query") / "wh"
    _land(
        root,
        "r1",
        [_article("1", "旧正文", T0, "a"), _article("2", "正文", T0, "a")],
        [
            Failure(f"{SITE}/a/2022/05/31/NW9.html", "9", "fetch", "timeout", None, T0, True, "a"),
            Failure(f"{SITE}/a/2022/05/31/NW8.html", "8", "fetch", "HTTP 404", 404, T0, False),
            Failure(f"{SITE}/category/b.html", None, "category", "timeout", None, T0, True, "b"),
        ],
    )
    _land(
        root,
        "r2",
        [
            _article("1", "新正文", T0 + dt.timedelta(hours=1), "b"),
            _article("1", "新正文", T0 + dt.timedelta(hours=2), "b"),
            _article("3", "第三篇", T0 + dt.timedelta(hours=1), "c"),
        ],
    )
    run_query(root, "SELECT 1")  # SQLite's reader files exist from here on
    with sqlite3.connect(root.parent / "secret.db") as other:  # a SQLite file beside the lake
        other.execute("CREATE TABLE s (k, v)")
        other.execute("INSERT INTO s VALUES ('key', 'hunter2')")
    return root


def test_articles_keep_the_latest_version_and_merge_categories(lake: Path) -> None:
    _, rows = run_query(lake, "SELECT info_code, body, categories FROM articles ORDER BY 1")
    assert rows == [("1", "新正文", ["a", "b"]), ("2", "正文", ["a"]), ("3", "第三篇", ["c"])]
    _, versions = run_query(
        lake, "SELECT body FROM article_versions WHERE info_code = '1' ORDER BY fetched_at"
    )
    assert versions == [("旧正文",), ("新正文",)], "an unchanged re-fetch adds no version"


def test_published_at_keeps_the_second_and_offset(lake: Path) -> None:
    _, rows = run_query(lake, "SELECT published_at::VARCHAR FROM articles WHERE info_code='2'")
    assert rows == [("2022-05-31 18:03:41+08",)]


def test_connect_opens_the_lake_read_only_from_anywhere(
    lake: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _files(lake)
    with lake_api.connect(lake) as connection:
        assert connection.execute("SELECT count(*) FROM articles").fetchone() == (3,)
        with pytest.raises(duckdb.Error, match="read-only"):
            connection.execute("DELETE FROM articles")
    assert _files(lake) == before
    assert list(tmp_path.iterdir()) == []


def test_an_empty_warehouse_has_every_table_and_view(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ensure_lake(tmp_path / "empty")
    for name in (*TABLES, *VIEWS):
        assert run_query(tmp_path / "empty", f"SELECT count(*) FROM {name}")[1] == [(0,)], name


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO '{root}/data/main/articles/x.parquet'",
        "COPY articles TO '/tmp/finews-leak.csv'",
        "DELETE FROM articles",
        "UPDATE articles SET body = ''",
        "DROP TABLE articles",
        "DROP VIEW retry_queue",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO articles SELECT * FROM articles",
        "ATTACH '/tmp/other.duckdb' AS other",
        "DETACH finews",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_text('{root}/.catalog-setup.lock')",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT 1; DELETE FROM articles",
        "PRAGMA force_checkpoint",
        "CHECKPOINT",
        "CALL ducklake_merge_adjacent_files('finews')",
        "SELECT * FROM ducklake_merge_adjacent_files('finews')",
        "SELECT * FROM finews.merge_adjacent_files()",
        "SELECT * FROM ducklake_cleanup_old_files('finews', cleanup_all => true)",
        "SELECT * FROM ducklake_expire_snapshots('finews', older_than => now())",
        "SELECT * FROM query('SELECT * FROM ducklake_merge_adjacent_files(''finews'')')",
        "SELECT * FROM sqlite_scan('{root}/../secret.db', 's')",
        "SELECT * FROM sqlite_attach('{root}/../secret.db')",
        "EXPLAIN ANALYZE DELETE FROM articles",
    ],
    ids=[
        "copy-into-warehouse",
        "copy-out",
        "delete",
        "update",
        "drop-table",
        "drop-view",
        "create-table",
        "create-view",
        "insert",
        "attach",
        "detach",
        "read-passwd",
        "read-text",
        "read-beside-the-data",
        "set",
        "reset",
        "install",
        "load",
        "two-statements",
        "pragma",
        "checkpoint",
        "call-merge",
        "select-merge",
        "select-catalog-merge",
        "select-cleanup",
        "select-expire",
        "query-text",
        "sqlite-scan-beside",
        "sqlite-attach-beside",
        "explain-analyze-delete",
    ],
)
def test_sql_refuses_anything_but_reading(lake: Path, query: str) -> None:
    before = _files(lake)
    with pytest.raises(QueryRefused) as info:
        run_query(lake, query.replace("{root}", str(lake)))
    assert "\n" not in str(info.value)
    assert "hunter2" not in str(info.value)
    assert _files(lake) == before
    assert not Path("/tmp/finews-leak.csv").exists()
    assert run_query(lake, "SELECT count(*) FROM articles")[1] == [(3,)]


def test_explain_analyze_of_a_select_is_a_read(lake: Path) -> None:
    names, rows = run_query(lake, "EXPLAIN ANALYZE SELECT count(*) FROM articles")
    assert names and rows


def test_the_sandbox_is_locked_and_sees_only_the_lake(lake: Path) -> None:
    _, rows = run_query(
        lake,
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('enable_external_access', 'lock_configuration', 'allowed_directories', "
        "'temp_directory') ORDER BY name",
    )
    settings = dict(rows)
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["temp_directory"] == "", "DuckDB allows its spill folder: there is none"
    allowed = settings["allowed_directories"].strip("[]").split(", ")
    assert sorted(allowed) == sorted(
        [str(lake.resolve() / "catalog.sqlite") + "/", str(lake.resolve() / "data") + "/"]
    )
    _, databases = run_query(lake, "SELECT database_name FROM duckdb_databases()")
    assert sorted(name for (name,) in databases) == ["finews", "memory", "system", "temp"]


def test_sql_cannot_read_the_spill_folder_of_its_working_directory(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB adds its temporary folder (``.tmp`` under the working directory) to the
    allowed directories unless told otherwise."""
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("secret,value\nkey,hunter2\n")
    monkeypatch.chdir(tmp_path)
    for path in (".tmp/secret.csv", str(tmp_path / ".tmp" / "secret.csv")):
        with pytest.raises(QueryRefused) as info:
            run_query(lake, f"SELECT * FROM read_csv('{path}')")
        assert "hunter2" not in str(info.value)


def test_reading_a_folder_that_holds_no_warehouse_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not a warehouse")
    for as_of in (None, "r1"):
        with pytest.raises(QueryRefused, match="no warehouse at"):
            run_query(tmp_path, "SELECT count(*) FROM articles", as_of=as_of)
    with pytest.raises(LakeError, match="no warehouse at"):
        lake_api.connect(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


# -- time travel: finews sql --as-of RUN_ID ---------------------------------------------------


def test_as_of_a_run_answers_as_the_lake_was_when_it_ended(lake: Path) -> None:
    sql = "SELECT info_code, body, categories FROM articles ORDER BY 1"
    assert run_query(lake, sql, as_of="r1")[1] == [
        ("1", "旧正文", ["a"]),
        ("2", "正文", ["a"]),
    ]
    assert run_query(lake, sql, as_of="r2")[1] == run_query(lake, sql)[1]
    assert len(run_query(lake, sql)[1]) == 3
    versions = "SELECT count(*) FROM article_versions"
    assert run_query(lake, versions, as_of="r1")[1] == [(2,)]
    assert run_query(lake, "SELECT count(*) FROM retry_queue", as_of="r1")[1] == [(1,)]


def test_as_of_an_unknown_run_is_refused_in_one_line(lake: Path) -> None:
    before = _files(lake)
    for run_id in ("nope", "r1' OR '1'='1"):
        with pytest.raises(QueryRefused, match="no run") as info:
            run_query(lake, "SELECT count(*) FROM articles", as_of=run_id)
        assert "\n" not in str(info.value)
    assert _files(lake) == before


def test_cli_as_of(lake: Path, cli_env: dict[str, str]) -> None:
    args = ["sql", "SELECT count(*) AS n FROM articles", "--warehouse", str(lake)]
    first = _finews([*args, "--as-of", "r1", "--format", "csv"], cli_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["n", "2"]

    unknown = _finews([*args, "--as-of", "no-such-run"], cli_env)
    assert unknown.returncode == 2, unknown.stdout
    assert unknown.stderr.startswith("finews: error: no run 'no-such-run'"), unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert "Traceback" not in unknown.stderr


# -- readers and compaction --------------------------------------------------------------------


@pytest.mark.parametrize("runs", [1, 2], ids=["one-run", "two-runs"])
def test_a_reader_opened_before_a_compaction_keeps_reading_the_same_rows(
    tmp_path: Path, runs: int
) -> None:
    """A session opened before ``compact`` (its first SELECT done) reads on, and reads the
    same rows, after the compaction merged the small files it was reading. The small files
    come from one crawl (a commit per batch) or from two. (A transaction left open across a
    compaction is another matter: DuckLake 1.5.5 may then read no rows, see docs/design.md.)"""
    root = tmp_path / "wh"
    codes = [str(n) for n in range(6)]
    for run in range(runs):
        share = codes[run::runs]
        _land(root, f"r{run}", [_article(code, f"正文{code}", T0, "a") for code in share])
    later = T0 + dt.timedelta(hours=1)
    sql = (
        "SELECT 'articles', info_code, body FROM articles "
        "UNION ALL SELECT 'versions', info_code, body FROM article_versions ORDER BY ALL"
    )
    expected = sorted(
        [("articles", code, f"正文{code}") for code in codes]
        + [("versions", code, f"正文{code}") for code in codes]
    )
    with lake_api.connect(root) as reader:
        assert reader.execute(sql).fetchall() == expected

        report = compact(root, retention=dt.timedelta(days=7))
        assert report["articles"].files_before == 6 > report["articles"].files_after
        assert report["article_versions"].files_before == 6 > report["article_versions"].files_after

        assert reader.execute(sql).fetchall() == expected, "the session reads on"
    assert run_query(root, sql)[1] == expected
    _land(root, "after", [_article("0", "新正文", later, "b")])
    assert run_query(root, "SELECT body FROM articles WHERE info_code = '0'")[1] == [("新正文",)]


def test_files_merged_away_stay_until_the_reader_grace_has_passed(tmp_path: Path) -> None:
    """A compaction schedules the files it merged away; only a later one, past
    ``READER_GRACE``, deletes them: queries begun before it keep their files."""
    root = tmp_path / "wh"
    for run in range(2):
        _land(root, f"r{run}", [_article(f"{run}{n}", f"正文{run}{n}", T0, "a") for n in range(3)])
    files = sorted((root / "data").rglob("*.parquet"))
    report = compact(root, retention=dt.timedelta(days=7))
    assert report.files_after < report.files_before, "there were files to merge"
    assert report.files_deleted == 0
    assert report.snapshots_expired == 0
    assert [path for path in files if not path.exists()] == []


# -- a plain DuckDB, no finews code --------------------------------------------------------------


@pytest.mark.parametrize("alias", ["finews", "lake"])
def test_a_plain_duckdb_attaches_the_catalog_and_reads_tables_and_views(
    lake: Path, alias: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the README tells analysts: load the two extensions, attach the catalog file."""
    monkeypatch.chdir(tmp_path)
    session = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        for name in ("ducklake", "sqlite_scanner"):
            session.execute(f"LOAD '{extension_file(name)}'")
        catalog = lake.resolve() / "catalog.sqlite"
        session.execute(f"ATTACH 'ducklake:sqlite:{catalog}' AS {alias} (READ_ONLY)")
        for name, count in COUNTS.items():
            row = session.execute(f"SELECT count(*) FROM {alias}.{name}").fetchone()
            assert row == (count,), (alias, name)
        session.execute(f"USE {alias}")
        assert session.execute("SELECT url FROM dead_pages").fetchall() == [
            (f"{SITE}/a/2022/05/31/NW8.html",)
        ]
        assert session.execute("SELECT url FROM listing_retry_queue").fetchall() == [
            (f"{SITE}/category/b.html",)
        ]
        assert session.execute("SELECT info_code FROM retry_queue").fetchall() == [("9",)]
        with pytest.raises(duckdb.Error):
            session.execute("DELETE FROM articles")
    finally:
        session.close()
    assert list(tmp_path.iterdir()) == []
