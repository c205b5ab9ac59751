"""Hostile input: off-site links, oversized bodies, traversal in category names, writing SQL.

Server-side evidence first: a second listening socket on 127.0.0.2 stands for every host the
crawler must not contact, and the parent of the warehouse is snapshotted around each command.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import warehouse as lake_api
from common.records import Article
from flows.crawl import crawl
from flows.runner import run_flow
from replica.faults import FaultPlan, OffsiteHost
from replica.posts import Post
from replica.server import ReplicaServer
from tasks.settings import SettingsError
from warehouse.lake import ALIAS, open_writer
from warehouse.landing import Lander

FINEWS = [sys.executable, "-m", "flows.cli"]
SETTINGS = """\
read_timeout = 2.0
retries = 1
backoff_base = 0.01
backoff_max = 0.5
max_response_bytes = 1000000
extract_workers = 1
"""


def _finews(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINEWS, *args], capture_output=True, text=True, env=env, timeout=180, check=False, cwd=cwd
    )


def _snapshot(root: Path, *, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (minus ``skip``): relative path -> (size, mtime).

    SQLite's shared-memory index (``catalog.sqlite-shm``) is rewritten by every reader of the
    catalog by design: only its size counts. A write to the catalog shows in
    ``catalog.sqlite`` or in its write-ahead log (``-wal``, empty while nothing is written).
    """
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, names in os.walk(root):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in dirs:  # a folder's own mtime changes with its entries: those are listed
            found[str(Path(folder, name).relative_to(root)) + "/"] = (0, 0)
        for name in names:
            path = Path(folder, name)
            stat = path.lstat()
            mtime = 0 if name.endswith(".sqlite-shm") else stat.st_mtime_ns
            found[str(path.relative_to(root))] = (stat.st_size, mtime)
    return found


def _query(warehouse: Path, sql: str) -> list[tuple[object, ...]]:
    with lake_api.connect(warehouse) as connection:
        return connection.execute(sql).fetchall()


def _inject(page: bytes, markup: str, before: str) -> bytes:
    text = page.decode("utf-8")
    cut = text.rfind(before)
    assert cut >= 0, before
    return (text[:cut] + markup + text[cut:]).encode("utf-8")


@pytest.fixture
def offsite() -> Iterator[OffsiteHost]:
    host = OffsiteHost()
    host.start()
    try:
        yield host
    finally:
        host.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "finews.toml"
    path.write_text(SETTINGS)
    return path


# -- links that leave the site -----------------------------------------------------------------


def _hostile_links(offsite: str) -> list[str]:
    forbidden = offsite.removeprefix("http://")
    port = forbidden.rsplit(":", 1)[1]
    post = "/x/2022/01/01/NW1234567890123456.html"
    return [
        f"{offsite}{post}",
        f"//{forbidden}/emnews/2022/01/01/NW1234567890123457.html",
        "http://169.254.169.254/latest/meta-data/2022/01/01/NW1234567890123458.html",
        f"http://finews.withounder.com@{forbidden}/emnews/2022/01/01/NW1234567890123459.html",
        f"http://[::ffff:127.0.0.2]:{port}/emnews/2022/01/01/NW1234567890123460.html",
        f"http://2130706434:{port}/emnews/2022/01/01/NW1234567890123461.html",
        f"{offsite}/category/emnews.html",
        "file:///etc/passwd",
        "file:///emnews/2022/01/01/NW1234567890123462.html",
        f"javascript:fetch('{offsite}/steal')",
        "data:text/html;base64,PGEgaHJlZj0iaHR0cDovLzEyNy4wLjAuMiI+eDwvYT4=",
        f"ftp://{forbidden}/emnews/2022/01/01/NW1234567890123463.html",
    ]


def test_off_site_and_private_links_are_never_requested(
    posts: list[Post],
    site: dict[str, bytes],
    offsite: OffsiteHost,
    tmp_path: Path,
    config: Path,
    prefect_harness: None,
) -> None:
    links = _hostile_links(offsite.base_url)
    anchors = "".join(f'<p><a href="{href}">link {n}</a></p>\n' for n, href in enumerate(links))
    hostile = dict(site)
    hostile["/category/emnews.html"] = _inject(site["/category/emnews.html"], anchors, "</section>")
    hostile["/"] = _inject(site["/"], anchors, "</section>")
    entries = "".join(f'<entry><link href="{href}" rel="alternate"/></entry>' for href in links)
    hostile["/feed.xml"] = _inject(site["/feed.xml"], entries, "</feed>")
    victim = next(p for p in posts if p.category == "emnews")
    hostile[victim.url_path] = _inject(site[victim.url_path], anchors, "</section>")
    warehouse = tmp_path / "warehouse"
    with ReplicaServer(hostile) as server:
        report = run_flow(
            crawl,
            categories=["all"],
            full=True,
            site=server.base_url,
            warehouse=str(warehouse),
            rps=0,
            config_file=str(config),
        )
        base = server.base_url

    assert offsite.connections == [], offsite.request_lines
    assert report["categories_listed"] > 1
    for table in ("fetch_log", "failures", "articles", "sightings"):
        strays = _query(warehouse, f"SELECT url FROM {table} WHERE NOT starts_with(url, '{base}/')")
        assert strays == [], (table, strays)
    for code in ("1234567890123456", "1234567890123458", "1234567890123462"):
        assert _query(warehouse, f"SELECT url FROM sightings WHERE info_code = '{code}'") == []
    assert victim.info_code in {
        row[0] for row in _query(warehouse, "SELECT info_code FROM articles")
    }


# -- oversized responses -------------------------------------------------------------------------


def test_oversized_responses_are_aborted_and_recorded(
    posts: list[Post], site: dict[str, bytes], tmp_path: Path, config: Path, prefect_harness: None
) -> None:
    emnews = [p for p in posts if p.category == "emnews"]
    other = next(p.category for p in posts if p.category != "emnews" and " " not in p.category)
    pinned = {
        emnews[0].url_path: "huge",  # Content-Length says 4 MB
        emnews[1].url_path: "huge_chunked",  # no length: 4 MB in chunks
        emnews[2].url_path: "gzip_bomb",  # 20 KB of gzip inflating to 20 MB
        f"/category/{other}.html": "huge_chunked",
    }
    warehouse = tmp_path / "warehouse"
    plan = FaultPlan(0, {}, pinned=pinned)
    with ReplicaServer(site, faults=plan) as server:
        report = run_flow(
            crawl,
            categories=["emnews", other],
            site=server.base_url,
            warehouse=str(warehouse),
            rps=0,
            config_file=str(config),
        )
        requested = [unquote(urlsplit(path).path) for _, path, _ in server.requests]

    rows = _query(warehouse, "SELECT url, stage, reason, transient FROM failures")
    reasons = {unquote(urlsplit(url).path): (stage, reason, t) for url, stage, reason, t in rows}
    assert set(reasons) == set(pinned)
    for path, (stage, reason, transient) in reasons.items():
        assert reason == "too large: > 1000000 bytes", (path, reason)
        assert stage == ("category" if path.startswith("/category/") else "fetch")
        assert transient is False
        assert requested.count(path) == 1, "an oversized page is not asked for again"
    assert report["failures"] == len(pinned)
    landed = {row[0] for row in _query(warehouse, "SELECT info_code FROM articles")}
    assert {p.info_code for p in emnews[3:]} <= landed
    assert not {p.info_code for p in emnews[:3]} & landed


# -- category names that try to leave the warehouse ----------------------------------------------


@pytest.mark.parametrize(
    "category",
    ["../etc", "a/b", "..", ".", "..\\..\\etc", "/etc/passwd", "emnews/../../x"],
    ids=["dotdot-etc", "slash", "dotdot", "dot", "backslashes", "absolute", "nested-dotdot"],
)
def test_path_like_category_is_refused(
    category: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    warehouse = tmp_path / "parent" / "warehouse"
    warehouse.parent.mkdir()
    before = _snapshot(tmp_path)
    result = _finews(
        [
            "crawl",
            "--category",
            category,
            "--warehouse",
            str(warehouse),
            "--site",
            "http://127.0.0.1:9",
        ],
        cli_env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "setting 'categories'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _snapshot(tmp_path) == before, "nothing written"


@pytest.mark.parametrize(
    "category",
    ["%2e%2e", "..%2f..%2fetc", "%2e%2e%2f%2e%2e%2fpasswd", "....", "~root"],
    ids=["encoded-dotdot", "encoded-slashes", "all-encoded", "four-dots", "tilde"],
)
def test_encoded_traversal_category_stays_inside(
    category: str, site: dict[str, bytes], tmp_path: Path, config: Path, prefect_harness: None
) -> None:
    """Refused like the others (the CLI's exit 2), or crawled as a harmless slug (in-process:
    the CLI hands the same settings to the same flow, without a second Prefect start-up)."""
    parent = tmp_path / "parent"
    warehouse = parent / "warehouse"
    parent.mkdir()
    (parent / "secret.txt").write_text("keep me")
    before = _snapshot(tmp_path, skip=warehouse)
    report = None
    with ReplicaServer(site) as server:
        try:
            report = run_flow(
                crawl,
                categories=[category],
                site=server.base_url,
                warehouse=str(warehouse),
                rps=0,
                config_file=str(config),
            )
        except SettingsError as exc:
            assert "'categories'" in str(exc)
        # /robots.txt is the fixed reachability probe every run starts with
        requested = [path for _, path, _ in server.requests if path != "/robots.txt"]

    assert _snapshot(tmp_path, skip=warehouse) == before, "nothing written beside the warehouse"
    for path in requested:
        assert posixpath.normpath(unquote(urlsplit(path).path)).startswith("/category/"), path
    if report is not None:
        assert len(requested) == 1, requested
        assert report["failures"] == 1, "the page is not on the site: one failure, no crash"
        for path in warehouse.rglob("*"):
            assert path.resolve().is_relative_to(warehouse.resolve()), path


# -- finews sql: reading only, inside the warehouse ------------------------------------------

SECRET = "secret,value\nkey,hunter2\n"


def _article(code: str) -> Article:
    now = dt.datetime.now(dt.UTC)
    return Article(
        info_code=code,
        info_code_raw="NW" + code,
        url=f"http://h/emnews/2022/05/31/NW{code}.html",
        category="emnews",
        title="标题",
        published_at=now,
        source="财联社",
        digest=None,
        body=f"正文{code}",
        source_url=None,
        content_hash=f"hash-{code}",
        fetched_at=now,
        extractor="x",
        extraction_path="region",
    )


@pytest.fixture(scope="module")
def sql_parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with data files, and files a merge scheduled for deletion (still on disk, for
    the readers that may use them); secrets beside it, and in the working directory's
    ``.tmp`` (DuckDB's default spill folder)."""
    parent = tmp_path_factory.mktemp("sql")
    warehouse = parent / "warehouse"
    with open_writer(warehouse) as session:
        lander = Lander(session, "r1")
        for code in ("1", "2", "3"):
            lander.articles([_article(code)])
        session.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}')")
    catalog = f"file:{warehouse / 'catalog.sqlite'}?mode=ro"
    with sqlite3.connect(catalog, uri=True) as metadata:
        (scheduled,) = metadata.execute(
            "SELECT count(*) FROM ducklake_files_scheduled_for_deletion"
        ).fetchone()
    assert scheduled > 0, "files a cleanup could delete"
    _query(warehouse, "SELECT count(*) FROM articles")  # SQLite's reader files exist
    (parent / "secret.csv").write_text(SECRET)
    (parent / ".tmp").mkdir()
    (parent / ".tmp" / "secret.csv").write_text(SECRET)
    with sqlite3.connect(parent / "secret.db") as other:
        other.execute("CREATE TABLE s (k, v)")
        other.execute("INSERT INTO s VALUES ('key', 'hunter2')")
    return parent


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH '{parent}/other.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv('file:///etc/passwd')",
        "SELECT * FROM read_csv('{wh}/../secret.csv')",
        "SELECT * FROM read_csv('{wh}/data/../../secret.csv')",
        "SELECT * FROM '{wh}/data/main/articles/../../../../secret.csv'",
        "SELECT * FROM glob('{wh}/../*')",
        "SELECT * FROM read_csv('.tmp/secret.csv')",
        "SELECT * FROM read_csv('{parent}/.tmp/secret.csv')",
        "SELECT * FROM sqlite_scan('{parent}/secret.db', 's')",
        "SELECT * FROM sqlite_attach('{parent}/secret.db')",
        "COPY (SELECT 1 AS x) TO '{wh}/data/main/articles/x.parquet'",
        "COPY articles FROM '{parent}/secret.csv'",
        "EXPORT DATABASE '{parent}/dump'",
        "WITH d AS (SELECT 1) DELETE FROM articles",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{wh}/data/main/articles/x.parquet'",
        "SET allowed_directories = ['/']",
        "SELECT * FROM ducklake_merge_adjacent_files('finews')",
        "SELECT * FROM finews.merge_adjacent_files()",
        "SELECT * FROM ducklake_rewrite_data_files('finews', delete_threshold => 0)",
        "SELECT * FROM ducklake_cleanup_old_files('finews', cleanup_all => true)",
        "SELECT * FROM ducklake_delete_orphaned_files('finews', cleanup_all => true)",
        "SELECT * FROM ducklake_expire_snapshots('finews', older_than => now())",
        "SELECT * FROM ducklake_flush_inlined_data('finews')",
        "SELECT * FROM finews.set_option('data_inlining_row_limit', 10)",
        "SELECT * FROM query('SELECT * FROM ducklake_merge_adjacent_files(''finews'')')",
    ],
    ids=[
        "attach",
        "read-passwd",
        "read-file-url",
        "read-beside-warehouse",
        "read-dotdot-from-data",
        "replacement-scan-dotdot",
        "glob-parent",
        "read-spill-folder",
        "read-spill-folder-absolute",
        "sqlite-scan-beside",
        "sqlite-attach-beside",
        "copy-into-warehouse",
        "copy-from",
        "export-database",
        "delete-behind-cte",
        "explain-analyze-copy",
        "set-allowed-directories",
        "merge-files",
        "merge-files-catalog-macro",
        "rewrite-files",
        "cleanup-scheduled-files",
        "delete-orphaned-files",
        "expire-snapshots",
        "flush-inlined-data",
        "set-option",
        "sql-in-a-string",
    ],
)
def test_sql_refuses_writes_and_files_outside(
    query: str, sql_parent: Path, cli_env: dict[str, str]
) -> None:
    """Run from the lake's parent folder (so its ``.tmp`` is the working directory's)."""
    warehouse = sql_parent / "warehouse"
    before = _snapshot(sql_parent)
    result = _finews(
        [
            "sql",
            query.format(parent=sql_parent, wh=warehouse),
            "--warehouse",
            str(warehouse),
            "--format",
            "csv",
        ],
        cli_env,
        cwd=sql_parent,
    )
    assert "hunter2" not in result.stdout + result.stderr
    assert _snapshot(sql_parent) == before, "nothing written or changed"
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("finews: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
