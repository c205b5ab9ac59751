"""The ``finews`` command as users run it: real subprocesses, replica on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replica.server import ReplicaServer

FINEWS = [sys.executable, "-m", "flows.cli"]


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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["crawl", "--rps", "-1"], "setting 'rps'"),
        (["crawl", "--site", "ftp://example.com"], "setting 'site'"),
        (["crawl", "--rps", "abc"], "'abc' is not a valid float"),
        (["crawl", "--config", "/nonexistent/finews.toml"], "does not exist"),
        (["backfill", "--since", "2022-06-02", "--until", "2022-06-01"], "after --until"),
        (["sql", "DELETE FROM articles"], "only reading statements"),
        (["sql", "COPY (SELECT 1) TO '/tmp/x.csv'"], "only reading statements"),
    ],
    ids=[
        "negative-rps",
        "bad-site",
        "rps-not-a-number",
        "missing-config",
        "since-after-until",
        "sql-delete",
        "sql-copy",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], needle: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    warehouse = tmp_path / "wh"
    if args[0] == "sql":
        warehouse.mkdir()
    result = _run([*args, "--warehouse", str(warehouse)], cli_env, timeout=60)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    if args[0] != "crawl" or "abc" not in args:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (warehouse / "articles").exists()


def test_warehouse_that_is_a_file(tmp_path: Path, cli_env: dict[str, str]) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    result = _run(["crawl", "--warehouse", str(target)], cli_env, timeout=60)
    assert result.returncode == 2
    assert "setting 'warehouse'" in result.stderr
    assert target.read_text() == "not a folder"


def test_help_for_every_command(cli_env: dict[str, str]) -> None:
    for command in ("crawl", "backfill", "sql", "demo"):
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
    assert (warehouse / "finews.duckdb").exists()
