"""Concurrency: within a run (``concurrency`` bounds its batch task runs), and across runs.

Two ``finews crawl`` and one ``finews backfill`` at once on one warehouse, with a reader: the
runs overlap on purpose (emnews is in all three, the backfill refetches; ``StartGate`` has
every run start before any goes on), and a thread keeps querying ``articles`` through a
read-only connection to the catalog while they run.
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
from urllib.parse import urlsplit

import duckdb
import pytest

from flows.crawl import LISTING_BATCH, crawl
from flows.runner import run_flow
from flows.temporary_server import STARTUP_TIMEOUT_S
from replica.faults import is_post_path
from replica.posts import Post
from replica.server import ReplicaServer
from tests.bench_crash import kill_group, pick_categories
from warehouse.catalog import CATALOG_NAME, refresh_catalog

TIMEOUT_S = STARTUP_TIMEOUT_S + 120  # each process may wait that long for its Prefect server
SETTINGS = f"""\
batch_size = 5
extract_workers = 1
retries = 2
backoff_base = 0.05
backoff_max = 1.0
read_timeout = {STARTUP_TIMEOUT_S + 60}
"""  # read_timeout: a run's first requests wait at the StartGate for the slowest run to start
RPS = "12"  # shared by the three processes: spreads each run's landing over seconds, so the
# three runs' writes interleave


class StartGate(ReplicaServer):
    """The replica, holding each request of a run (the command's robots.txt probe aside, made
    before Prefect starts) until every one of ``agents`` has sent one. So every run has started
    before any goes on, and the runs overlap however far apart their temporary Prefect servers
    came up (on a busy machine, more than a run takes). Runs are told apart by User-Agent."""

    def __init__(self, site: dict[str, bytes], agents: set[str]) -> None:
        super().__init__(site)
        self.waiting = set(agents)
        self.opened = threading.Event()
        self._gate = threading.Lock()
        gate = self
        serving = self._httpd.RequestHandlerClass

        class Handler(serving):  # type: ignore[misc, valid-type]
            def _serve(self, *, head: bool) -> None:
                gate.arrive(self.headers.get("User-Agent", ""), urlsplit(self.path).path)
                super()._serve(head=head)

        self._httpd.RequestHandlerClass = Handler

    def arrive(self, agent: str, path: str) -> None:
        if path == "/robots.txt":
            return
        with self._gate:
            self.waiting.discard(agent)
            if not self.waiting:
                self.opened.set()
        self.opened.wait(TIMEOUT_S)


@dataclass
class Reader:
    """Queries ``articles`` in a loop; an error is retried once (a catalog swap), then kept."""

    catalog: Path
    reads: int = 0
    swaps: int = 0
    counts: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _count(self) -> int:
        with duckdb.connect(str(self.catalog), read_only=True) as connection:
            row = connection.execute("SELECT count(*) FROM articles").fetchone()
            return int(row[0]) if row else 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                count = self._count()
            except duckdb.Error:
                self.swaps += 1
                try:
                    count = self._count()
                except duckdb.Error as exc:
                    self.errors.append(str(exc).splitlines()[0])
                    continue
            self.reads += 1
            self.counts.append(count)
            time.sleep(0.02)


def test_two_crawls_and_a_backfill_at_once(
    posts: list[Post], site: dict[str, bytes], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    emnews, first, second = pick_categories(posts)
    days = sorted({p.published_at.date() for p in posts if p.category == "emnews"})
    expected = {p.info_code for p in posts if p.category in (emnews, first, second)}
    # Each process gets its own Prefect home: three temporary Prefect servers sharing one
    # SQLite file race on its migrations and report "database is locked". This test is about
    # the warehouse, so the Prefect side is kept apart.
    warehouse = tmp_path / "warehouse"
    refresh_catalog(warehouse)  # an existing (empty) warehouse, readable from the start
    config = tmp_path / "finews.toml"
    config.write_text(SETTINGS)
    reader = Reader(warehouse / CATALOG_NAME)
    thread = threading.Thread(target=reader.run, daemon=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    agents = {name: f"finews-test ({name})" for name in ("crawl-1", "crawl-2", "backfill")}
    with StartGate(site, set(agents.values())) as server:
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
                    env["FINEWS_USER_AGENT"] = agents[name]
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
                server.opened.set()  # releases held requests if a run never started
                reader.stop.set()
                thread.join(timeout=30)
                for proc in procs.values():
                    with contextlib.suppress(RuntimeError):
                        kill_group(proc)
        post_hits = [path for _, path, _ in server.requests if "/category/" not in path]

    outputs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in procs}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{outputs[name][-2000:]}"
        assert "Traceback" not in outputs[name], outputs[name]
        assert "ERROR" not in outputs[name], outputs[name]
    assert server.waiting == set(), "every run's requests went through the gate"
    assert len(post_hits) > len(expected), "the runs overlapped on the same posts"

    assert reader.errors == [], f"{reader.errors[:3]} ({reader.swaps} swap retries)"
    assert reader.reads >= 10, "the reader ran while the processes did"
    assert reader.counts == sorted(reader.counts), "articles never disappear from the view"
    with duckdb.connect(str(warehouse / CATALOG_NAME), read_only=True) as connection:
        rows = connection.execute("SELECT info_code, categories FROM articles").fetchall()
        per_code = connection.execute(
            "SELECT count(*) - count(DISTINCT info_code) FROM articles"
        ).fetchone()
        failures = connection.execute("SELECT url, reason FROM failures").fetchall()
        runs = connection.execute("SELECT flow, status FROM runs ORDER BY flow").fetchall()
        spans = connection.execute("SELECT started_at, finished_at FROM runs").fetchall()
    assert per_code == (0,), "one current row per info_code"
    assert {code for code, _ in rows} == expected, "no article lost, none invented"
    by_code = dict(rows)
    for post in posts:
        if post.category in (emnews, first, second):
            assert post.category in by_code[post.info_code], (post.info_code, post.category)
    assert failures == []
    for index, (start, end) in enumerate(spans):
        others = spans[:index] + spans[index + 1 :]
        assert any(start < e and s < end for s, e in others), f"run {index} overlapped none"
    assert runs == [("backfill", "completed"), ("crawl", "completed"), ("crawl", "completed")]
    print(f"reader: {reader.reads} reads, {reader.swaps} retried after a catalog swap")


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
