"""The ``finews`` command as users run it: real subprocesses, replica on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

import warehouse as lake_api
from flows.output import format_summary
from flows.reports import report_markdown
from flows.run_report import RunReport
from replica.posts import Post
from replica.server import ReplicaServer
from warehouse.lake import ensure_lake, extension_file
from warehouse.schema import TABLES

FINEWS = [sys.executable, "-m", "flows.cli"]
_POST_PATH = re.compile(r"/\d{4}/\d{2}/\d{2}/[^/]+\.html$")
_COMPACTED = re.compile(
    r"^compacted (?P<path>.+) in \d+\.\d s: (?P<expired>\d+) snapshot\(s\) expired, "
    r"(?P<deleted>\d+) unused file\(s\) deleted$"
)
_TABLE_FILES = re.compile(
    r"^  (?P<table>\w+) +(?P<before>\d+) → (?P<after>\d+) data files \((?P<mb>\d+\.\d) MB\)$"
)


def _run(
    args: list[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINEWS, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _clean(result: subprocess.CompletedProcess[str]) -> None:
    """A successful run must look successful: no ERROR lines, no tracebacks."""
    output = result.stdout + result.stderr
    assert "ERROR" not in output, output
    assert "Traceback" not in output, output


def test_crawl_then_sql(server: ReplicaServer, warehouse: Path, cli_env: dict[str, str]) -> None:
    crawl = _run(
        [
            "crawl",
            f"--site={server.base_url}",
            "--category",
            "emnews",
            "--warehouse",
            str(warehouse),
            "--rps",
            "0",
        ],
        cli_env,
    )
    assert crawl.returncode == 0, crawl.stderr
    _clean(crawl)
    for label in ("references seen", "new articles", "duplicates skipped", "failures", "elapsed"):
        assert label in crawl.stdout
    probes = [path for _, path, _ in server.requests if path == "/robots.txt"]
    assert len(probes) == 1, "the command line probes the site; its run does not again"

    query = _run(
        [
            "sql",
            "SELECT count(*) AS n, count(DISTINCT info_code) AS ids FROM articles",
            "--warehouse",
            str(warehouse),
            "--format=json",
        ],
        cli_env,
    )
    assert query.returncode == 0, query.stderr
    rows = json.loads(query.stdout)
    assert rows[0]["n"] == rows[0]["ids"] > 0

    as_csv = _run(
        [
            "sql",
            "SELECT info_code FROM articles LIMIT 2",
            "--warehouse",
            str(warehouse),
            "--format",
            "csv",
        ],
        cli_env,
    )
    assert as_csv.stdout.splitlines()[0] == "info_code"
    table = _run(
        ["sql", "SELECT count(*) AS n FROM articles", "--warehouse", str(warehouse)], cli_env
    )
    assert "n" in table.stdout and "(1 row)" in table.stdout

    compact = _run(["compact", "--warehouse", str(warehouse)], cli_env)
    assert compact.returncode == 0, compact.stderr
    _clean(compact)
    assert "{" not in compact.stdout, "a summary for people, not a Python dict"
    first, *lines = compact.stdout.strip().splitlines()
    head = _COMPACTED.match(first)
    assert head is not None, compact.stdout
    assert head["path"] == str(warehouse)
    assert int(head["expired"]) == 0, "nothing older than the retention"
    printed = {}
    for line in lines:
        entry = _TABLE_FILES.match(line)
        assert entry is not None, line
        printed[entry["table"]] = (int(entry["before"]), int(entry["after"]))
    assert set(printed) == set(TABLES)
    before, after = printed["articles"]
    assert 0 < after <= before
    with lake_api.connect(warehouse) as connection:
        files = dict(
            connection.execute(
                "SELECT table_name, file_count FROM ducklake_table_info('finews')"
            ).fetchall()
        )
        assert {table: counts[1] for table, counts in printed.items()} == files
        assert connection.execute("SELECT count(*) FROM articles").fetchone() == (rows[0]["n"],)


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` readable but not writable by this user (root: the immutable attribute)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o755)


def test_sql_without_write_access_says_why_in_one_line(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """The SQLite catalog runs in WAL mode (readers and writers never wait on each other), so a
    reader needs to create its shared-memory file beside it: one line says so, exit 2."""
    warehouse = tmp_path / "wh"
    warehouse.mkdir()
    ensure_lake(warehouse)
    with _read_only(warehouse):
        assert not os.access(warehouse, os.W_OK)
        result = _run(
            ["sql", "SELECT count(*) AS n FROM articles", "--warehouse", str(warehouse)],
            cli_env,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "needs write access" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["crawl", "--rps", "-1"], "setting 'rps'"),
        (["crawl", "--site", "ftp://example.com"], "setting 'site'"),
        (["crawl", "--rps", "abc"], "'abc' is not a valid float"),
        (["crawl", "--concurrency", "x"], "Invalid value for '--concurrency'"),
        (["crawl", "--bogus"], "No such option '--bogus'"),
        (["crawl", "--config", "/nonexistent/finews.toml"], "does not exist"),
        (["backfill", "--since", "2022-06-02", "--until", "2022-06-01"], "after --until"),
        (["backfill", "--since", "2024-13-01"], "(see 'finews backfill --help')"),
        (["backfill", "--reextract"], "no warehouse at"),
        (["compact"], "no warehouse at"),
        (["sql", "DELETE FROM articles"], "only reading statements"),
        (["sql", "COPY (SELECT 1) TO '/tmp/x.csv'"], "only reading statements"),
        (["sql", "SELECT 1"], "no warehouse at"),
        (["sql", "SELECT 1", "--format", "xml"], "Invalid value for '--format'"),
        (["serve", "--compact-cron", "* * *"], "Invalid value for '--compact-cron'"),
    ],
    ids=[
        "negative-rps",
        "bad-site",
        "rps-not-a-number",
        "concurrency-not-a-number",
        "unknown-option",
        "missing-config",
        "since-after-until",
        "since-not-a-date",
        "reextract-without-warehouse",
        "compact-without-warehouse",
        "sql-delete",
        "sql-copy",
        "sql-without-warehouse",
        "sql-unknown-format",
        "serve-bad-compact-cron",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], needle: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    warehouse = tmp_path / "wh"
    existing = args[0] == "sql" and "no warehouse at" not in needle
    if existing:
        warehouse.mkdir()
        ensure_lake(warehouse)
    before = sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    result = _run([*args, "--warehouse", str(warehouse)], cli_env, timeout=60)
    assert result.returncode == 2
    assert needle in result.stderr
    assert result.stderr.startswith("finews: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    if existing:  # refused before the lake is opened: not even SQLite's reader files
        after = sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
        assert after == before
    else:
        assert not warehouse.exists(), "bad input writes nothing"


@pytest.mark.parametrize("target", ["file", "/sys/finews-demo"], ids=["a-file", "not-allowed"])
def test_demo_where_no_warehouse_can_be(
    target: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    path = tmp_path / "file"
    path.write_text("not a folder")
    if target != "file":
        path = Path(target)
    result = _run(["demo", "--posts", "10", "--warehouse", str(path)], cli_env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("finews: error: "), result.stderr
    assert "--warehouse" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    if target == "file":
        assert path.read_text() == "not a folder"


def test_warehouse_that_is_a_file(tmp_path: Path, cli_env: dict[str, str]) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    result = _run(["crawl", "--warehouse", str(target)], cli_env, timeout=60)
    assert result.returncode == 2
    assert "setting 'warehouse'" in result.stderr
    assert target.read_text() == "not a folder"


def test_help_for_every_command(cli_env: dict[str, str]) -> None:
    for command in ("crawl", "backfill", "sql", "serve", "compact", "demo"):
        result = _run([command, "--help"], cli_env, timeout=60)
        assert result.returncode == 0
        assert "Usage:" in result.stdout


def test_demo(tmp_path: Path, cli_env: dict[str, str]) -> None:
    warehouse = tmp_path / "demo"
    result = _run(["demo", "--posts", "60", "--warehouse", str(warehouse)], cli_env)
    assert result.returncode == 0, result.stderr
    _clean(result)
    assert "127.0.0.1" in result.stdout
    assert "new articles        " in result.stdout
    assert "new articles 0" in result.stdout
    assert str(warehouse.resolve()) in result.stdout
    assert (warehouse / "catalog.sqlite").is_file()
    # The line it prints for DuckDB users works in a plain DuckDB with the two extensions.
    attach = re.search(r"(ATTACH '[^']+' AS finews \(READ_ONLY\)); USE finews;", result.stdout)
    assert attach is not None, result.stdout
    with duckdb.connect() as session:
        for name in ("ducklake", "sqlite_scanner"):
            session.execute(f"LOAD '{extension_file(name)}'")
        session.execute(attach[1])
        session.execute("USE finews")
        (count,) = session.execute("SELECT count(*) FROM articles").fetchone() or (0,)
        assert count > 0
        session.execute("SELECT count(*) FROM listing_retry_queue").fetchall()


def test_the_summary_and_the_prefect_report_show_the_same_counts() -> None:
    """One list of counts for both; a backfill's out-of-range posts are shown, zero re-extraction
    counts are not."""
    counts = {
        "categories_listed": 1,
        "pages_fetched": 2,
        "not_modified": 3,
        "refs_seen": 4,
        "new_articles": 5,
        "new_versions": 6,
        "unchanged": 0,
        "duplicates_skipped": 7,
        "out_of_range": 8,
        "retried": 9,
        "failures": 10,
    }
    report = RunReport(
        "r1", "backfill", "http://x", ["a"], "/w", "full", dt.datetime.now(dt.UTC), **counts
    ).as_dict()
    printed = dict(re.findall(r"^  (\S.*?) {2,}(\d+)$", format_summary(report), re.MULTILINE))
    published = dict(re.findall(r"^\| (.+?) \| (\d+) \|$", report_markdown(report), re.MULTILINE))
    assert printed == published
    assert sorted(map(int, printed.values())) == list(range(1, 11)), "every non-zero count"
    assert "outside --since/--until" in printed


def test_ctrl_c_stops_a_run_at_once_and_the_next_run_lands_the_rest(
    posts: list[Post], server: ReplicaServer, warehouse: Path, cli_env: dict[str, str]
) -> None:
    """Ctrl-C reaches the terminal's whole process group (the workers and Prefect's temporary
    server too): the run stops in seconds with one line and status 130, not after its queued
    batches and a minute of retries to a server that is gone; the next run lands the rest."""
    args = ["crawl", f"--site={server.base_url}", "--category", "all"]
    args += ["--warehouse", str(warehouse)]
    process = subprocess.Popen(
        [*FINEWS, *args, "--rps", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(_POST_PATH.search(path) for _, path, _ in server.requests):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.05)
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=90)
        took = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("finews: error: interrupted"), err
    assert "Traceback" not in out + err
    assert took < 30, f"stopped {took:.1f} s after Ctrl-C"

    again = _run([*args, "--rps", "0"], cli_env)
    assert again.returncode == 0, again.stderr
    _clean(again)
    result = _run(
        [
            "sql",
            "SELECT count(*), count(DISTINCT info_code) FROM articles",
            "--warehouse",
            str(warehouse),
            "--format",
            "csv",
        ],
        cli_env,
    )
    listed = {p.info_code for p in posts if " " not in p.category}
    count, distinct = (int(v) for v in result.stdout.strip().splitlines()[-1].split(","))
    assert count == distinct >= len(listed)
