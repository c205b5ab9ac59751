"""SIGKILL of ``finews crawl`` (its whole process group) mid-run, then a rerun to completion.

Three trials, one per phase worth killing in: while fetching posts, while a Parquet file is
being written, around the catalog refresh. The machinery and the checks are in
``tests/bench_crash.py``, which runs 20 and more trials with kills at uniform times.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from replica.posts import Post
from replica.server import ReplicaServer
from tests.bench_crash import (
    VIEWS,
    CrashLab,
    check_warehouse,
    hidden_temps,
    kill_group,
    table,
)
from warehouse.catalog import CATALOG_NAME, refresh_catalog
from warehouse.writer import remove_stale_temp_files

SEED = 20261126


@pytest.fixture(scope="module")
def lab(
    posts: list[Post],
    site: dict[str, bytes],
    cli_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CrashLab]:
    with ReplicaServer(site) as server:
        yield CrashLab(server, posts, tmp_path_factory.mktemp("crash"), cli_env)


@pytest.mark.parametrize(
    ("number", "kind"),
    [(1, "fetch"), (2, "parquet-write"), (3, "catalog-refresh")],
    ids=["during-fetches", "during-a-parquet-write", "around-the-catalog-refresh"],
)
def test_killed_crawl_leaves_a_sound_warehouse(lab: CrashLab, number: int, kind: str) -> None:
    trial = lab.trial(number, kind, random.Random(f"{SEED}-{kind}"), duration=10.0)
    report = table([trial])
    assert trial.killed_at is not None, f"the run ended before the kill point\n{report}"
    assert trial.ok, report
    assert trial.articles == len(lab.expected)


REFRESH_FOREVER = """\
import sys
from pathlib import Path
from warehouse.catalog import refresh_catalog
while True:
    refresh_catalog(Path(sys.argv[1]))
"""


def _kill_a_refresh_with_its_wal(root: Path, env: dict[str, str]) -> list[Path]:
    """Refresh the catalog in a loop in a subprocess; SIGKILL it once a ``.tmp.wal`` shows."""
    proc = subprocess.Popen(
        [sys.executable, "-c", REFRESH_FOREVER, str(root)], env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if any(n.endswith(".tmp.wal") for n in (os.listdir(root) if root.exists() else [])):
                break
    finally:
        kill_group(proc)
    return hidden_temps(root)


def test_a_catalog_refresh_killed_midway_is_cleaned_up_by_the_next_run(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    for attempt in range(10):
        root = tmp_path / f"warehouse-{attempt}"
        refresh_catalog(root)  # the catalog of an earlier run
        leftovers = _kill_a_refresh_with_its_wal(root, cli_env)
        if any(p.name.endswith(".tmp.wal") for p in leftovers):
            break
    else:
        pytest.fail("never caught a refresh with its WAL open")
    with duckdb.connect(str(root / CATALOG_NAME), read_only=True) as connection:
        for view in VIEWS:
            assert connection.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    stamp = time.time() - 2 * 3600
    for temp in leftovers:
        os.utime(temp, (stamp, stamp))
    remove_stale_temp_files(root)  # what the next run does first (CrawlRun.prepare)
    assert hidden_temps(root) == [], "leftovers of the killed refresh, two hours old"


def test_the_checks_catch_a_broken_warehouse(lab: CrashLab, tmp_path: Path) -> None:
    """The checker itself: a visible half-written file and a missing article are reported."""
    warehouse = tmp_path / "warehouse"
    problems = check_warehouse(warehouse, {"1"})
    assert any("catalog unreadable" in p for p in problems), problems
    (tmp_path / "warehouse" / "articles").mkdir(parents=True)
    (warehouse / "articles" / "part-x.parquet").write_bytes(b"PAR1 half")
    problems = check_warehouse(warehouse, {"1"})
    assert any("unreadable articles/part-x.parquet" in p for p in problems), problems


def test_a_replacement_that_fails_midway_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path,
) -> None:
    """The one write-then-rename helper behind manifests, merged files and the retired list."""
    from warehouse.retired import RETIRED, retire, retired
    from warehouse.writer import TargetExists, replacing

    target = tmp_path / "state.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), replacing(target) as temp:
        temp.write_text("half", encoding="utf-8")
        raise RuntimeError("crash while writing")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    with replacing(target) as temp:
        temp.write_text("new", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "new"
    with pytest.raises(TargetExists), replacing(target, overwrite=False) as temp:
        temp.write_text("clobber", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    root = tmp_path / "warehouse"
    retire(root, [root / "articles" / "dt=2026-11-24" / "part-a.parquet"], now=1.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("os.fsync", lambda fd: (_ for _ in ()).throw(OSError("I/O error")))
        with pytest.raises(OSError, match="I/O error"):  # synced before it replaces the list
            retire(root, [root / "articles" / "dt=2026-11-24" / "part-b.parquet"], now=2.0)
    assert retired(root) == {"articles/dt=2026-11-24/part-a.parquet": 1.0}
    assert [p.name for p in (root / RETIRED).parent.iterdir()] == [RETIRED.name]
