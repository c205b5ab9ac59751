"""Crawling a site that misbehaves: every fault of ``replica.faults`` over an emnews crawl.

One faulty replica, six crawl runs into one warehouse (module fixture); the tests read what
each run requested (the replica's log) and left in the lake (``warehouse.connect``).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from flows.crawl import backfill, crawl
from flows.runner import run_flow
from replica.faults import PERMANENT, RECOVERING, FaultPlan
from replica.posts import Post
from replica.server import ReplicaServer
from tests.quality import bigram_f1
from warehouse import connect
from warehouse.rawstore import iter_raw_pages

pytestmark = pytest.mark.usefixtures("prefect_harness")

SEED = 16  # a seed under which every fault below hits at least one of the 52 emnews posts
SHARE = 0.05  # of the emnews post pages, for each fault: 75% faulty, 25% healthy
PERMANENT_FAULTS = (*PERMANENT, "empty")
SHARES = {fault: SHARE for fault in (*RECOVERING, "always_503", *PERMANENT_FAULTS)}
RUNS = 6  # always_503 is dead after 5 failed runs; the 6th must not ask for it again
SETTINGS = """\
read_timeout = 1.0
retries = 2
backoff_base = 0.01
backoff_max = 1.5
max_response_bytes = 1000000
extract_workers = 1
"""
# what the failures table must say about each permanent fault (stage, words of the reason)
REASONS = {
    "404": ("fetch", "http 404"),
    "410": ("fetch", "http 410"),
    "not_html": ("fetch", "application/pdf"),
    "no_article": ("extract", ""),
    "empty": ("extract", ""),
    "huge": ("fetch", "too large"),
    "redirect_loop": ("fetch", "redirect loop"),
    "redirect_offsite": ("fetch", "127.0.0.2"),
}


@dataclass
class Run:
    report: dict[str, Any]
    requested: Counter[str]  # post path -> requests made during the run
    landed: set[str]  # info codes in ``articles`` after the run
    retry_queue: dict[str, int]  # url path -> attempts
    dead: dict[str, int]


@dataclass
class Crawled:
    posts: dict[str, Post]  # path -> post, every emnews post
    faults: dict[str, str]  # path -> fault
    plan: FaultPlan
    warehouse: Path
    runs: list[Run] = field(default_factory=list)

    def paths(self, *faults: str) -> set[str]:
        return {path for path, fault in self.faults.items() if fault in faults}

    def codes(self, *faults: str) -> set[str]:
        return {self.posts[path].info_code for path in self.paths(*faults)}

    @property
    def healthy(self) -> set[str]:
        return {p.info_code for path, p in self.posts.items() if path not in self.faults}

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with connect(self.warehouse) as connection:
            return connection.execute(sql).fetchall()


def _path(url: str) -> str:
    return unquote(urlsplit(url).path)


@pytest.fixture(scope="module")
def crawled(
    prefect_harness: None,
    posts: list[Post],
    site: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Crawled]:
    tmp = tmp_path_factory.mktemp("faults")
    config = tmp / "finews.toml"
    config.write_text(SETTINGS)
    emnews = {p.url_path: p for p in posts if p.category == "emnews"}
    plan = FaultPlan(SEED, SHARES)
    state = Crawled(emnews, plan.assign(emnews), plan, tmp / "warehouse")
    with ReplicaServer(site, faults=plan) as server:
        for _ in range(RUNS):
            before = len(server.requests)
            report = run_flow(
                crawl,
                categories=["emnews"],
                site=server.base_url,
                warehouse=str(state.warehouse),
                rps=0,
                config_file=str(config),
            )
            requested = Counter(_path(p) for _, p, _ in server.requests[before:])
            state.runs.append(
                Run(
                    report=report,
                    requested=Counter({p: n for p, n in requested.items() if p in emnews}),
                    landed={row[0] for row in state.query("SELECT info_code FROM articles")},
                    retry_queue={
                        _path(url): n
                        for url, n in state.query("SELECT url, attempts FROM retry_queue")
                    },
                    dead={
                        _path(url): n
                        for url, n in state.query("SELECT url, attempts FROM dead_pages")
                    },
                )
            )
    yield state


def test_the_plan_covers_every_fault(crawled: Crawled) -> None:
    assert set(crawled.faults.values()) == set(SHARES), Counter(crawled.faults.values())
    assert crawled.healthy, "some pages stay healthy"
    again = FaultPlan(SEED, SHARES)
    try:
        assert again.assign(crawled.posts) == crawled.faults, "the plan is deterministic"
    finally:
        again.close()


def test_recoverable_articles_land_within_two_runs(crawled: Crawled) -> None:
    first, second = crawled.runs[0], crawled.runs[1]
    within_run = set(RECOVERING) - {"503_then_ok"}
    assert crawled.healthy | crawled.codes(*within_run) <= first.landed, "retried in the run"
    assert not crawled.codes("503_then_ok") & first.landed, "3 × 503 outlast 2 retries"
    assert crawled.paths("503_then_ok") <= set(first.retry_queue)
    assert crawled.healthy | crawled.codes(*RECOVERING) <= second.landed
    assert second.report["retried"] == len(crawled.paths("503_then_ok", "always_503"))
    assert set(second.retry_queue) == crawled.paths("always_503"), "the queue empties"
    for run in crawled.runs[1:]:
        assert crawled.healthy | crawled.codes(*RECOVERING) <= run.landed


def test_each_page_is_asked_for_as_often_as_its_fault_needs(crawled: Crawled) -> None:
    first = crawled.runs[0].requested
    expected = {
        "503_then_ok": 3,  # 1 + 2 retries, all 503
        "429_retry_after": 2,
        "reset_then_ok": 2,
        "hang_then_ok": 2,
        "truncated_then_ok": 2,
        "bad_gzip_then_ok": 2,
        "always_503": 3,
        "redirect_loop": 2,  # the page, then page?loop=1 back to a page already seen
    }
    for path, fault in crawled.faults.items():
        assert first[path] == expected.get(fault, 1), (fault, path)
    for path in set(crawled.posts) - set(crawled.faults):
        assert first[path] == 1, path


@pytest.mark.parametrize(
    "fault",
    [fault for fault in PERMANENT_FAULTS],
    ids=str,
)
def test_permanent_failure_is_recorded_dead_and_never_asked_again(
    crawled: Crawled, fault: str
) -> None:
    paths = crawled.paths(fault)
    stage, words = REASONS[fault]
    rows = crawled.query("SELECT url, stage, reason, transient FROM failures")
    recorded = {_path(url): (s, reason, t) for url, s, reason, t in rows if _path(url) in paths}
    assert set(recorded) == paths
    for path, (got_stage, reason, transient) in recorded.items():
        assert got_stage == stage and words in reason and reason, (path, got_stage, reason)
        assert transient is False, (path, reason)
    assert not crawled.codes(fault) & crawled.runs[-1].landed
    for run in crawled.runs:
        assert paths <= set(run.dead), run.dead
        assert not paths & set(run.retry_queue)
    assert all(crawled.runs[-1].dead[path] == 1 for path in paths), "recorded once"
    for index, run in enumerate(crawled.runs[1:], start=2):
        assert not paths & set(run.requested), f"run {index} asked for a dead page again"


def test_always_503_counts_up_then_dies(crawled: Crawled) -> None:
    paths = crawled.paths("always_503")
    for number, run in enumerate(crawled.runs, start=1):
        if number < 5:
            assert {p: run.retry_queue.get(p) for p in paths} == dict.fromkeys(paths, number)
            assert not paths & set(run.dead)
        else:
            assert not paths & set(run.retry_queue)
            assert {p: run.dead.get(p) for p in paths} == dict.fromkeys(paths, 5)
        asked = {p: run.requested[p] for p in paths}
        assert asked == dict.fromkeys(paths, 3 if number <= 5 else 0), f"run {number}"
    reasons = crawled.query(
        "SELECT DISTINCT last_reason, last_status FROM dead_pages WHERE last_transient"
    )
    assert reasons == [("http 503 after 3 attempts", 503)]


def test_no_duplicates_and_no_refetch_of_landed_pages(crawled: Crawled) -> None:
    [(last,)] = crawled.query("SELECT id FROM current_snapshot()")
    twice = crawled.query(
        f"SELECT info_code, count(*) FROM table_changes('articles', 0, {last}) "
        "WHERE change_type IN ('insert', 'update_postimage') GROUP BY 1 HAVING count(*) > 1"
    )
    assert twice == [], "each article landed once, retries and reruns included"
    assert crawled.query("SELECT count(*) - count(DISTINCT info_code) FROM articles") == [(0,)]
    landed_paths = {p for p, post in crawled.posts.items() if post.info_code in crawled.healthy}
    for run in crawled.runs[1:]:
        assert not landed_paths & set(run.requested)


def test_truncated_or_empty_pages_never_land(crawled: Crawled) -> None:
    rows = crawled.query("SELECT info_code, url, body FROM articles")
    by_code = {p.info_code: p for p in crawled.posts.values()}
    for code, url, body in rows:
        if crawled.faults.get(_path(url)) == "no_article":
            continue  # covered (as a known bug) by the permanent-failure test
        assert bigram_f1(body, by_code[code].expected_text) >= 0.98, (code, url)
    assert crawled.codes("truncated_then_ok", "bad_gzip_then_ok") <= {row[0] for row in rows}
    assert not crawled.codes("empty") & {row[0] for row in rows}


def test_the_forbidden_host_gets_no_connection(crawled: Crawled) -> None:
    assert crawled.paths("redirect_offsite"), "the crawl met off-site redirects"
    assert crawled.plan.offsite.connections == []


def test_runs_report_their_failures(crawled: Crawled) -> None:
    first = crawled.runs[0].report
    failing = crawled.paths("503_then_ok", "always_503", *PERMANENT_FAULTS)
    rows = crawled.query(f"SELECT url FROM failures WHERE run_id = '{first['run_id']}'")
    failed = {_path(url) for (url,) in rows}
    assert failed == failing
    assert first["failures"] == len(rows) == len(failed)
    assert first["new_articles"] == len(crawled.runs[0].landed)
    for run in crawled.runs[1:5]:
        assert run.report["failures"] == len(crawled.paths("always_503"))
    statuses = crawled.query("SELECT status FROM runs ORDER BY started_at")
    assert statuses == [("completed_with_failures",)] * 5 + [("completed",)]


def _kill_workers(stop: threading.Event, killed: list[int]) -> None:
    """Kill every worker process of this process as soon as it appears (the OOM killer's way)."""
    while not stop.wait(0.01):
        try:
            children = multiprocessing.active_children()
        except RuntimeError:  # a pool started a worker while the list was read: read again
            continue
        for child in children:
            child.kill()
            killed.append(child.pid or 0)


def test_a_crashed_reextract_batch_is_recorded_and_the_run_goes_on(
    site: dict[str, bytes], tmp_path: Path
) -> None:
    """Re-extraction batches are task runs like a crawl's: one whose worker dies (twice) is a
    recorded failure; the run lands what it can, its runs row and its report."""
    config = tmp_path / "finews.toml"
    config.write_text("extract_workers = 2\nbatch_size = 10\n")
    warehouse = tmp_path / "warehouse"
    with ReplicaServer(site) as server:
        params = {"site": server.base_url, "warehouse": str(warehouse), "rps": 0}
        crawled = run_flow(crawl, categories=["emnews"], **params, config_file=str(config))
    assert crawled["failures"] == 0 and crawled["new_articles"] > 20
    stop, killed = threading.Event(), list[int]()
    killer = threading.Thread(target=_kill_workers, args=(stop, killed), daemon=True)
    killer.start()
    try:
        report = run_flow(backfill, reextract=True, **params, config_file=str(config))
    finally:
        stop.set()
        killer.join(timeout=30)
    assert killed, "the workers were killed"
    with connect(warehouse) as connection:
        failures = connection.execute(
            "SELECT stage, reason, info_code FROM failures WHERE run_id = ?", [report["run_id"]]
        ).fetchall()
        runs = connection.execute(
            "SELECT flow, status, failures FROM runs WHERE run_id = ?", [report["run_id"]]
        ).fetchall()
        stored = iter_raw_pages(connection, categories=None, since=None, until=None, batch_size=10)
        total = stored.total
    assert failures, "the crashed batches' pages are recorded"
    for stage, reason, info_code in failures:
        assert stage == "reextract" and reason.startswith("task crashed: ") and info_code
    assert report["status"] == "completed_with_failures"  # finews backfill exits 1
    assert runs == [("backfill", "completed_with_failures", len(failures))]
    done = report["failures"] + report["unchanged"] + report["new_versions"]
    assert done == total, "the batches after a crashed one ran too"
