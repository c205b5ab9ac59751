"""Concurrency: within a run (``concurrency`` bounds its batch task runs), and across runs.

Two ``finews crawl`` and one ``finews backfill`` at once on one lake, with a reader: the runs
overlap on purpose (emnews is in all three, every run refetches), and a thread keeps querying
``articles`` through ``warehouse.connect`` while they run.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest

from flows.crawl import LISTING_BATCH, crawl
from flows.runner import run_flow
from replica.faults import is_post_path
from replica.posts import Post
from replica.server import ReplicaServer
from tests.bench_crash import kill_group, pick_categories
from warehouse import connect
from warehouse.lake import ensure_lake

SETTINGS = """\
batch_size = 5
extract_workers = 1
retries = 2
backoff_base = 0.05
backoff_max = 1.0
read_timeout = 400.0
"""
RPS = "12"  # per process: keeps each run's fetching long enough for the three to interleave
GATE_S = 360.0  # the longest the listing pages wait for the three runs to be listing
TIMEOUT_S = 900


@dataclass
class Reader:
    """Queries ``articles`` in a loop, each time in a new ``warehouse.connect`` session, as an
    analyst would while the runs land: every read must succeed."""

    root: Path
    reads: int = 0
    counts: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _count(self) -> int:
        with connect(self.root) as connection:
            row = connection.execute("SELECT count(*) FROM articles").fetchone()
            return int(row[0]) if row else 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.counts.append(self._count())
                self.reads += 1
            except duckdb.Error as exc:
                self.errors.append(str(exc).splitlines()[0])
            time.sleep(0.02)


class GatedReplica(ReplicaServer):
    """The replica, holding every category page until ``pages`` of them are asked for (or
    ``GATE_S`` passed): the runs list at the same moment however long each took to start."""

    def __init__(self, site: dict[str, bytes], pages: int) -> None:
        super().__init__(site)
        self.pages = pages
        self.asked = 0
        self.opened = threading.Event()
        self.met = False  # every page was asked for before any was answered
        self._gate = threading.Lock()

    def lookup(self, path: str) -> Any:
        if path.startswith("/category/"):
            with self._gate:
                self.asked += 1
                if self.asked >= self.pages and not self.opened.is_set():
                    self.met = True
                    self.opened.set()
            if not self.opened.wait(GATE_S):
                self.opened.set()  # the test fails on ``met``; let the runs end
        return super().lookup(path)


def test_two_crawls_and_a_backfill_at_once(
    posts: list[Post], site: dict[str, bytes], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    emnews, first, second = pick_categories(posts)
    days = sorted({p.published_at.date() for p in posts if p.category == "emnews"})
    expected = {p.info_code for p in posts if p.category in (emnews, first, second)}
    # Each process gets its own Prefect home: three temporary Prefect servers sharing one
    # SQLite file race on its migrations and report "database is locked". This test is about
    # the lake, so the Prefect side is kept apart.
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    ensure_lake(warehouse)  # an existing (empty) lake, readable from the start
    config = tmp_path / "finews.toml"
    config.write_text(SETTINGS)
    reader = Reader(warehouse)
    thread = threading.Thread(target=reader.run, daemon=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    # the category pages the three runs list: crawl-1 two, crawl-2 two, the backfill one
    with GatedReplica(site, pages=5) as server:
        common = ["--site", server.base_url, "--warehouse", str(warehouse), "--rps", RPS]
        common += ["--config", str(config)]
        commands = {
            # --refetch: every run fetches emnews whatever the others landed first, so the
            # three always write the same articles at the same time, however they are timed.
            "crawl-1": ["crawl", "--category", emnews, "--category", first, "--refetch"],
            "crawl-2": ["crawl", "--category", f"{second},{emnews}", "--refetch"],
            "backfill": [
                "backfill",
                "--category",
                emnews,
                "--since",
                f"{days[0]}",
                "--until",
                f"{days[-1]}",
                "--refetch",
            ],
        }
        thread.start()
        with contextlib.ExitStack() as logs:
            try:
                for name, args in commands.items():
                    log = logs.enter_context((tmp_path / f"{name}.log").open("wb"))
                    env = {**cli_env, "PREFECT_HOME": str(tmp_path / f"prefect-{name}")}
                    procs[name] = subprocess.Popen(
                        [sys.executable, "-m", "flows.cli", *args, *common],
                        env=env,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                deadline = time.monotonic() + TIMEOUT_S
                for proc in procs.values():
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            finally:
                server.opened.set()  # releases held pages if a run never started
                reader.stop.set()
                thread.join(timeout=60)
                for proc in procs.values():
                    with contextlib.suppress(RuntimeError):
                        kill_group(proc)
        post_hits = [path for _, path, _ in server.requests if is_post_path(path)]

    outputs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in procs}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{outputs[name][-2000:]}"
        assert "Traceback" not in outputs[name], outputs[name]
        assert "ERROR" not in outputs[name], outputs[name]
    assert server.met, f"the three runs were not listing at once ({server.asked} pages)"
    assert len(post_hits) > len(expected), "the runs overlapped on the same posts"

    assert not thread.is_alive(), "the reader stopped"
    assert reader.errors == [], f"{len(reader.errors)} failed read(s): {reader.errors[:3]}"
    assert reader.reads >= 10, "the reader ran while the processes did"
    assert reader.counts == sorted(reader.counts), "articles never disappear"
    with connect(warehouse) as connection:
        rows = connection.execute("SELECT info_code, categories FROM articles").fetchall()
        per_code = connection.execute(
            "SELECT count(*) - count(DISTINCT info_code) FROM articles"
        ).fetchone()
        failures = connection.execute("SELECT url, reason FROM failures").fetchall()
        runs = connection.execute(
            "SELECT run_id, flow, status, started_at, finished_at, commits, commit_retries "
            "FROM runs ORDER BY flow, run_id"
        ).fetchall()
        snapshots = connection.execute(
            "SELECT snapshot_id, commit_extra_info FROM snapshots() "
            "WHERE commit_extra_info IS NOT NULL ORDER BY snapshot_id"
        ).fetchall()
    assert per_code == (0,), "one current row per info_code"
    assert {code for code, _ in rows} == expected, "no article lost, none invented"
    by_code = dict(rows)
    for post in posts:
        if post.category in (emnews, first, second):
            assert post.category in by_code[post.info_code], (post.info_code, post.category)
    assert failures == []
    assert [(flow, status) for _, flow, status, *_ in runs] == [
        ("backfill", "completed"),
        ("crawl", "completed"),
        ("crawl", "completed"),
    ]
    spans = [(start, end) for _, _, _, start, end, _, _ in runs]
    for index, (start, end) in enumerate(spans):
        others = spans[:index] + spans[index + 1 :]
        assert any(start < e and s < end for s, e in others), f"run {index} overlapped none"

    # Their commits interleaved: inside each run's first and last snapshot, another run's.
    by_run = {run_id: [sid for sid, tag in snapshots if tag == run_id] for run_id, *_ in runs}
    assert {tag for _, tag in snapshots} == set(by_run), "every commit is a run's"
    for run_id, _, _, _, _, commits, _ in runs:
        assert len(by_run[run_id]) == commits, (run_id, commits, by_run[run_id])
    for run_id, ids in by_run.items():
        between = [tag for sid, tag in snapshots if ids[0] < sid < ids[-1] and tag != run_id]
        assert between, f"no other run committed inside run {run_id}'s commits"
    retries = sum(retried for *_, retried in runs)
    interleaved = " ".join(
        f"{flow}:{len(by_run[run_id])} commits/{retried} retries"
        for run_id, flow, _, _, _, _, retried in runs
    )
    print(
        f"reader: {reader.reads} reads; {len(snapshots)} snapshots ({interleaved}); "
        f"commit_retries in total: {retries}"
    )


class CountingReplica(ReplicaServer):
    """The replica, answering category and post pages a little late, counting how many of each
    it is answering at once: a category page is asked for by the listing task holding it, a
    post by the worker process running its batch's task."""

    DELAY_S: ClassVar[dict[str, float]] = {"category": 0.3, "post": 0.05}

    def __init__(self, site: dict[str, bytes]) -> None:
        super().__init__(site)
        self.busy: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self._count = threading.Lock()

    def lookup(self, path: str) -> Any:
        kind = "category" if path.startswith("/category/") else "post"
        if kind == "post" and not is_post_path(path):
            return super().lookup(path)
        with self._count:
            self.busy[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.busy[kind])
        try:
            time.sleep(self.DELAY_S[kind])
            return super().lookup(path)
        finally:
            with self._count:
                self.busy[kind] -= 1


WORKERS = 3  # worker processes: enough for 3 batches at once, fewer than 6


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("concurrency", [1, 3, 6])
def test_concurrency_bounds_the_batch_tasks_a_run_has_at_once(
    concurrency: int, posts: list[Post], site: dict[str, bytes], tmp_path: Path
) -> None:
    """The flow called with parameters, as a deployment's run calls it (and the command line).

    12 category pages make ``min(concurrency, chunks)`` listing tasks at once; batches of 4
    posts keep ``min(concurrency, WORKERS)`` workers fetching at once.
    """
    counts = Counter(p.category for p in posts if p.category.isalnum())
    categories = [category for category, _ in counts.most_common(13)[1:]]  # not emnews (52)
    config = tmp_path / "finews.toml"
    config.write_text(f"batch_size = 4\nextract_workers = {WORKERS}\n")
    with CountingReplica(site) as server:
        report = run_flow(
            crawl,
            categories=categories,
            site=server.base_url,
            warehouse=str(tmp_path / "wh"),
            rps=0,
            concurrency=concurrency,
            config_file=str(config),
        )
        probes = [path for _, path, _ in server.requests if path == "/robots.txt"]
    assert report["failures"] == 0 and report["new_articles"] > 4 * WORKERS
    listing_tasks = math.ceil(12 / min(LISTING_BATCH, math.ceil(12 / concurrency)))
    assert server.peak["category"] == min(concurrency, listing_tasks)
    assert server.peak["post"] == min(concurrency, WORKERS)
    assert probes == ["/robots.txt"], "a run called without the command line probes the site"
