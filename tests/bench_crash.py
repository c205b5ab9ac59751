"""Crash trials: ``finews crawl`` killed with SIGKILL at chosen points, then rerun to completion.

Usage (from the repository root; not collected by pytest, ``tests/test_crash.py`` runs one
trial of each targeted kind)::

    .venv/bin/python tests/bench_crash.py --trials 20 [--posts 120] [--seed 1] [--json PATH]

A replica of the site runs on loopback in this process; each trial crawls a fresh lake with
``finews crawl`` started in its own session (``start_new_session=True``) and kills the whole
process group (the CLI, its temporary Prefect server, any worker) with SIGKILL:

- ``time``: at a time drawn uniformly between 0.5 s and the duration of an uninterrupted run
  (measured first: Prefect's start-up is a good part of it);
- ``listing``: while the replica is answering a category page (it holds the answer);
- ``mid-batch``: while batches are being landed and others fetched: the replica holds the
  answers to post pages asked for after the first ``concurrency`` batches' (the run has no
  other batch in flight until one of those is done), and the kill comes once b of those
  batches have landed (1 <= b <= ``concurrency``);
- ``commit``: inside a batch commit, its Parquet files written and the catalog not updated:
  after the b-th batch commit the lab takes the SQLite catalog's write lock (as a competing
  writer would), so the run's next commit cannot go through; the kill comes once that
  commit has written an ``articles`` data file the catalog does not reference;
- ``final-commit``: the same, in the run's last commit (its ``runs`` row written, not
  committed), once every batch has landed;
- ``end``: once the run's last commit has landed (the process is still winding down).

Right after the kill the lake must open with ``warehouse.connect`` and every table and view
must read whole, with one ``articles`` row per info_code. Then the same command runs to
completion and must land exactly what is missing: every listed article once (``articles``,
``article_versions``, ``raw_pages``), each pair of (post, category) sighted once, nothing in
the retry queue, a completed run; it asks for the missing posts only, each once (the pages the
killed run had fetched and not landed are the only ones asked for twice), and no more were
in flight at the kill than ``(concurrency + 1) × batch_size`` (the batch task runs, and the
batch being landed).

What a kill leaves in ``data/``: the Parquet files of a transaction that never committed,
referenced by no snapshot (``orphans`` in the table; nothing reads them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from replica import ReplicaServer, generate_posts, render_site  # noqa: E402
from replica.faults import is_post_path  # noqa: E402
from replica.posts import Post  # noqa: E402
from warehouse import connect  # noqa: E402
from warehouse.lake import CATALOG_FILE, DATA_FOLDER, LakeError, is_lake  # noqa: E402
from warehouse.schema import TABLES, VIEWS  # noqa: E402

KINDS = ("time", "listing", "mid-batch", "commit", "final-commit", "end")
BATCH_SIZE = 5
CONCURRENCY = 4
CONFIG = f"""\
batch_size = {BATCH_SIZE}
concurrency = {CONCURRENCY}
extract_workers = 1
retries = 2
backoff_base = 0.05
backoff_max = 1.0
read_timeout = 180.0
"""
RUN_TIMEOUT_S = 300.0
POLL_S = 0.001
# posts a run can have fetched and not landed: ``concurrency`` batch task runs, and the batch
# the flow is landing
IN_FLIGHT = (CONCURRENCY + 1) * BATCH_SIZE
HOLD_S = 240.0  # the longest the replica holds an answer for the lab to kill the run


def pick_categories(posts: list[Post], outlets: int = 2) -> list[str]:
    """emnews and the largest outlets with a one-word slug."""
    sizes: dict[str, int] = {}
    for post in posts:
        if post.category != "emnews" and " " not in post.category:
            sizes[post.category] = sizes.get(post.category, 0) + 1
    ranked = sorted(sizes, key=lambda slug: (-sizes[slug], slug))
    return ["emnews", *ranked[:outlets]]


def batch_count(refs: int, batch_size: int = BATCH_SIZE, workers: int = CONCURRENCY) -> int:
    """How many batch commits a run landing ``refs`` new posts makes (``flows.crawl._chunks``:
    batches no larger than ``batch_size``, at least as many as ``workers``)."""
    if not refs:
        return 0
    size = max(1, min(batch_size, math.ceil(refs / workers)))
    return math.ceil(refs / size)


def finews_command(
    base_url: str, warehouse: Path, categories: Iterable[str], config: Path, rps: float
) -> list[str]:
    args = [sys.executable, "-m", "flows.cli", "crawl", "--site", base_url]
    for category in categories:
        args += ["--category", category]
    return [*args, "--warehouse", str(warehouse), "--rps", str(rps), "--config", str(config)]


def live_group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(proc: subprocess.Popen[bytes], *, deadline_s: float = 10.0) -> None:
    """SIGKILL the process group led by ``proc`` and wait until none of it is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    until = time.monotonic() + deadline_s
    while live_group_members(proc.pid):
        if time.monotonic() > until:
            raise RuntimeError(f"processes of group {proc.pid} survived SIGKILL")
        time.sleep(0.02)


def run_to_completion(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run ``command`` in its own session; the group is killed if it overruns."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            status = proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            return -1, time.monotonic() - started
        with contextlib.suppress(RuntimeError):
            kill_group(proc)  # stray children of a finished run, if any
    return status, time.monotonic() - started


class CrashReplica(ReplicaServer):
    """The replica, noting each category and post page as it is asked for (before answering),
    and holding the answers ``hold(kind, n)`` picks (``n``: post pages asked since ``arm``,
    this one included) until ``release`` is set: the run that asked is then certainly
    waiting for that page."""

    def __init__(self, site: dict[str, bytes]) -> None:
        super().__init__(site)
        self.asked: list[tuple[str, str]] = []  # (kind, unquoted path), in order
        self.hold: Callable[[str, int], bool] | None = None
        self._armed_at = 0
        self.held = threading.Event()
        self.release = threading.Event()
        self._asked_lock = threading.Lock()

    def lookup(self, path: str) -> Any:
        plain = unquote(path)
        kind = "post" if is_post_path(plain) else "category" if "/category/" in plain else ""
        if kind:
            with self._asked_lock:
                self.asked.append((kind, plain))
                posts = sum(1 for asked, _ in self.asked[self._armed_at :] if asked == "post")
            hold = self.hold
            if hold is not None and not self.release.is_set() and hold(kind, posts):
                self.held.set()
                self.release.wait(HOLD_S)
        return super().lookup(path)

    def posts_asked(self, since: int = 0) -> list[str]:
        with self._asked_lock:
            return [path for kind, path in self.asked[since:] if kind == "post"]

    def arm(self, hold: Callable[[str, int], bool] | None) -> int:
        """Hold the answers ``hold`` picks from now on; the index of the next page asked."""
        self.release.clear()
        self.held.clear()
        with self._asked_lock:
            self._armed_at = len(self.asked)
            self.hold = hold
            return self._armed_at

    def disarm(self) -> None:
        self.hold = None
        self.release.set()


class Catalog:
    """The lake's SQLite catalog as the lab sees it from outside the run: its commits (by the
    message finews gives them), the data files it references, and its write lock.

    One connection for the whole trial (opened once the run has created the file: a connection
    never creates it), shared by the lab and the replica's threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / CATALOG_FILE
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self.note = ""  # what the lab saw in the catalog when it killed the run

    def _db(self) -> sqlite3.Connection | None:
        if self._connection is None and self.path.is_file():
            self._connection = sqlite3.connect(
                f"file:{self.path}?mode=rw",
                uri=True,
                timeout=60,
                isolation_level=None,
                check_same_thread=False,
            )
        return self._connection

    def commits(self) -> Counter[str]:
        """finews commits landed, by message (``listing``, ``batch``, ``failures``, ``run``)."""
        with self._lock:
            db = self._db()
            if db is None:
                return Counter()
            try:
                rows = db.execute(
                    "SELECT commit_message, count(*) FROM ducklake_snapshot_changes "
                    "WHERE author = 'finews' GROUP BY commit_message"
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # the run is creating the lake
                    return Counter()
                raise
            return Counter(dict(rows))

    def referenced(self) -> set[str]:
        """Names of the data and delete files the catalog references (any snapshot)."""
        with self._lock:
            db = self._db()
            if db is None:
                return set()
            rows = db.execute(
                "SELECT path FROM ducklake_data_file "
                "UNION ALL SELECT path FROM ducklake_delete_file"
            ).fetchall()
            return {Path(path).name for (path,) in rows}

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the catalog's write lock, as a writer in the middle of its commit would."""
        with self._lock:
            db = self._db()
            assert db is not None, "no catalog to lock"
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            with self._lock:
                db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def data_files(root: Path, table: str | None = None) -> list[Path]:
    """The Parquet files under the lake's data folder (of one table, or all)."""
    folder = root / DATA_FOLDER / "main"
    if table is not None:
        folder = folder / table
    return sorted(folder.rglob("*.parquet")) if folder.is_dir() else []


def orphans(root: Path, catalog: Catalog) -> list[Path]:
    """Data files no snapshot references: what a transaction that never committed wrote."""
    known = catalog.referenced()
    return [path for path in data_files(root) if path.name not in known]


@dataclass
class Trial:
    number: int
    kind: str
    target: str
    killed_at: float | None = None
    phase: str = ""
    posts_asked: int = 0
    landed_at_kill: int = 0
    in_flight: int = 0  # posts the killed run asked for and had not landed
    orphans: int = 0
    rerun_status: int | None = None
    rerun_s: float = 0.0
    rerun_posts: int = 0
    articles: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class CrashLab:
    """One replica, one Prefect home, one config; trials in fresh lakes under ``work``."""

    def __init__(
        self,
        server: CrashReplica,
        posts: list[Post],
        work: Path,
        env: dict[str, str],
        *,
        rps: float = 40.0,
        categories: list[str] | None = None,
    ) -> None:
        self.server = server
        self.work = work
        self.env = env
        self.rps = rps
        self.categories = categories or pick_categories(posts)
        listed = [p for p in posts if p.category in self.categories]
        self.expected = {p.info_code for p in listed}
        self.paths = {p.info_code: unquote(p.url_path) for p in listed}
        self.batches = batch_count(len(self.expected))
        self.config = work / "crash.toml"
        self.config.write_text(CONFIG)

    def command(self, warehouse: Path) -> list[str]:
        return finews_command(
            self.server.base_url, warehouse, self.categories, self.config, self.rps
        )

    def uninterrupted(self, name: str) -> tuple[float, list[str]]:
        """Run once without a kill: (wall seconds, problems)."""
        warehouse = self.work / name / "warehouse"
        status, elapsed = run_to_completion(
            self.command(warehouse), self.env, self.work / f"{name}.log"
        )
        problems = [] if status == 0 else [f"exit {status}: {self._tail(name)}"]
        return elapsed, problems + check_lake(warehouse, self.expected)

    def trial(self, number: int, kind: str, rng: random.Random, duration: float) -> Trial:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        name = f"trial-{number:02d}"
        warehouse = self.work / name / "warehouse"
        catalog = Catalog(warehouse)
        deadline = rng.uniform(0.5, max(0.6, duration))
        # the batch commits that land before the kill (mid-batch: some of the first
        # ``concurrency`` batches; commit: any but the last)
        early = rng.randint(1, min(CONCURRENCY, self.batches - 1))
        some = rng.randint(1, max(1, self.batches - 1))
        target = {
            "time": f"t={deadline:.2f}s",
            "listing": "a category page held",
            "mid-batch": f"posts held, {early} batch commit(s) landed",
            "commit": f"in the batch commit after {some}",
            "final-commit": f"in the last commit, after {self.batches} batches",
            "end": "the last commit landed",
        }[kind]
        trial = Trial(number, kind, target)
        before = self.server.arm(_hold(kind))
        started = time.monotonic()
        try:
            with (self.work / f"{name}-killed.log").open("wb") as out:
                proc = subprocess.Popen(
                    self.command(warehouse),
                    env=self.env,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
                try:
                    if self._await_kill_point(proc, kind, catalog, started, deadline, early, some):
                        trial.killed_at = time.monotonic() - started
                        trial.phase = self._phase(catalog, before) + catalog.note
                    elif proc.poll() is None:
                        trial.problems.append("the kill point never came")
                finally:
                    kill_group(proc)
                    self.server.disarm()
            if trial.killed_at is None:
                trial.phase = f"finished (exit {proc.returncode}) before the kill"
            trial.orphans = len(orphans(warehouse, catalog))
        finally:
            catalog.close()
        asked = self.server.posts_asked(before)
        trial.posts_asked = len(asked)
        problems, landed = check_after_kill(warehouse)
        trial.problems += problems
        trial.landed_at_kill = len(landed)
        in_flight = set(asked) - {self.paths[code] for code in landed}
        trial.in_flight = len(in_flight)
        if unasked := {self.paths[code] for code in landed} - set(asked):
            trial.problems.append(f"landed without being asked for: {sorted(unasked)[:3]}")
        if len(in_flight) > IN_FLIGHT:
            trial.problems.append(f"{len(in_flight)} posts asked for and not landed at the kill")

        rerun_from = self.server.arm(None)
        trial.rerun_status, trial.rerun_s = run_to_completion(
            self.command(warehouse), self.env, self.work / f"{name}-rerun.log"
        )
        if trial.rerun_status != 0:
            trial.problems.append(f"rerun exit {trial.rerun_status}: {self._tail(name)}")
        rerun = Counter(self.server.posts_asked(rerun_from))
        trial.rerun_posts = sum(rerun.values())
        missing = {self.paths[code] for code in self.expected - landed}
        if twice := sorted(path for path, n in rerun.items() if n > 1):
            trial.problems.append(f"rerun asked twice for {twice[:3]}")
        if again := sorted(set(rerun) - missing):
            trial.problems.append(f"rerun asked again for {len(again)} landed post(s): {again[:3]}")
        if skipped := sorted(missing - set(rerun)):
            trial.problems.append(f"rerun did not ask for {len(skipped)} missing: {skipped[:3]}")
        trial.problems += check_lake(warehouse, self.expected)
        with contextlib.suppress(duckdb.Error, LakeError):
            trial.articles = _rows(warehouse, "SELECT count(*) FROM articles")[0][0]
        return trial

    def _await_kill_point(
        self,
        proc: subprocess.Popen[bytes],
        kind: str,
        catalog: Catalog,
        started: float,
        deadline: float,
        early: int,
        some: int,
    ) -> bool:
        """Wait for the kind's kill point while the run runs: True when it came (the run still
        running), False when the run ended or overran first."""
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed > RUN_TIMEOUT_S:
                return False
            if kind == "time" and elapsed >= deadline:
                return True
            if kind == "listing" and self.server.held.is_set():
                return True
            if kind == "mid-batch" and self.server.held.is_set():
                landed = catalog.commits()["batch"]
                if landed >= early:
                    return True
            if kind == "end" and catalog.commits()["run"]:
                return proc.poll() is None
            if kind in ("commit", "final-commit"):
                done = catalog.commits()["batch"]
                if done >= (some if kind == "commit" else self.batches):
                    table = "articles" if kind == "commit" else "runs"
                    return self._kill_in_commit(proc, catalog, table, started)
            time.sleep(POLL_S if kind != "time" else 0.005)
        return False

    def _kill_in_commit(
        self, proc: subprocess.Popen[bytes], catalog: Catalog, table: str, started: float
    ) -> bool:
        """Take the catalog's write lock: the run's next commit writes its data files and then
        cannot commit (it rolls back and tries again, with backoff). The run is killed once a
        data file of ``table`` the catalog does not reference is on disk, the lock still held."""
        with catalog.write_lock():
            known = catalog.referenced()  # cannot change while the lock is held
            while proc.poll() is None and time.monotonic() - started < RUN_TIMEOUT_S:
                pending = [p for p in data_files(catalog.root, table) if p.name not in known]
                if pending:
                    catalog.note = f"; in a commit: {table}/{pending[0].name} not in the catalog"
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return True
                time.sleep(POLL_S)
        return False

    def _phase(self, catalog: Catalog, before: int) -> str:
        """What the killed run had done, seen from outside: its commits and the posts asked."""
        commits = catalog.commits()
        done = ", ".join(f"{n} {message}" for message, n in sorted(commits.items()))
        posts = len(self.server.posts_asked(before))
        state = f"commits: {done or 'none'}; posts asked {posts}/{len(self.expected)}"
        if self.server.held.is_set():
            state += "; a page held"
        return state

    def _tail(self, name: str) -> str:
        logs = sorted(self.work.glob(f"{name}*.log"), key=lambda p: p.stat().st_mtime)
        text = logs[-1].read_text(errors="replace") if logs else ""
        return " | ".join(text.strip().splitlines()[-3:])[-400:]


def _hold(kind: str) -> Callable[[str, int], bool] | None:
    """Which answers the replica holds for a kind of trial: category pages while listing;
    post pages beyond the first ``concurrency`` batches' for a kill mid-batch."""
    if kind == "listing":
        return lambda page, _: page == "category"
    if kind == "mid-batch":
        return lambda page, posts: page == "post" and posts > CONCURRENCY * BATCH_SIZE
    return None


def _rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with connect(root) as connection:
        return connection.execute(sql).fetchall()


def _tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    rows = connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    return {name for (name,) in rows}


def _read_everything(connection: duckdb.DuckDBPyConnection) -> None:
    """Every table and view read whole (every column of every data file, not statistics)."""
    for name in (*TABLES, *VIEWS):
        connection.execute(f"SELECT * FROM {name}").to_arrow_table()


def check_after_kill(root: Path) -> tuple[list[str], set[str]]:
    """Straight after the kill: the lake opens and reads whole, one row per info_code.
    Returns the problems and the info_codes landed."""
    if not is_lake(root):
        return [], set()
    try:
        with connect(root) as connection:
            if not _tables(connection):
                return [], set()  # killed while creating the lake: its first commit never came
            _read_everything(connection)
            counts = dict(
                connection.execute(
                    "SELECT info_code, count(*) FROM articles GROUP BY info_code"
                ).fetchall()
            )
    except (duckdb.Error, LakeError) as exc:
        return [f"after kill: lake unreadable: {str(exc).splitlines()[0]}"], set()
    problems = []
    if twice := sorted(code for code, n in counts.items() if n != 1):
        problems.append(f"after kill: articles repeat {twice[:3]}")
    return problems, set(counts)


def _repeats(connection: duckdb.DuckDBPyConnection, table: str, key: str) -> list[Any]:
    return connection.execute(
        f"SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 3"
    ).fetchall()


def check_lake(root: Path, expected: set[str]) -> list[str]:
    """After a completed run: the lake reads whole; every listed article present exactly once
    (current row, version, raw page), each sighting once; no failure left; a completed run."""
    if not is_lake(root):
        return [f"no lake at {root}"]
    try:
        with connect(root) as connection:
            _read_everything(connection)
            counts = dict(
                connection.execute(
                    "SELECT info_code, count(*) FROM articles GROUP BY info_code"
                ).fetchall()
            )
            repeats = {
                "article_versions": _repeats(connection, "article_versions", "info_code"),
                "raw_pages": _repeats(connection, "raw_pages", "info_code"),
                "sightings": _repeats(connection, "sightings", "info_code, category"),
            }
            queued = connection.execute("SELECT url, last_reason FROM retry_queue").fetchall()
            dead = connection.execute("SELECT url, last_reason FROM dead_pages").fetchall()
            runs = connection.execute("SELECT status FROM runs").fetchall()
    except (duckdb.Error, LakeError) as exc:
        return [f"lake unreadable: {str(exc).splitlines()[0]}"]
    problems = []
    if missing := expected - set(counts):
        problems.append(f"{len(missing)} listed article(s) missing, e.g. {sorted(missing)[:3]}")
    if extra := set(counts) - expected:
        problems.append(f"{len(extra)} unexpected article(s), e.g. {sorted(extra)[:3]}")
    if twice := sorted(code for code, n in counts.items() if n != 1):
        problems.append(f"articles repeat {twice[:3]}")
    problems += [f"{table} repeat {rows}" for table, rows in repeats.items() if rows]
    if queued or dead:
        problems.append(f"failures left: {[*queued, *dead][:3]}")
    if ("completed",) not in runs:
        problems.append(f"no completed run recorded: {runs}")
    return problems


# -- the bench -------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return str(value).replace("|", "/")


def table(trials: list[Trial]) -> str:
    head = (
        "| # | kind | target | killed at | phase at kill | posts asked | landed | in flight "
        "| orphans | rerun | rerun s | rerun posts | articles | outcome |"
    )
    lines = [head, "|" + "---|" * 14]
    for t in trials:
        killed = f"{t.killed_at:.2f}s" if t.killed_at is not None else "-"
        outcome = "ok" if t.ok else "FAIL: " + "; ".join(t.problems)
        cells = [
            t.number,
            t.kind,
            t.target,
            killed,
            t.phase,
            t.posts_asked,
            t.landed_at_kill,
            t.in_flight,
            t.orphans,
            t.rerun_status,
            f"{t.rerun_s:.1f}",
            t.rerun_posts,
            t.articles,
            outcome,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def plan_kinds(trials: int) -> list[str]:
    """Half of the trials at uniform times, the rest cycling through the targeted phases."""
    targeted = KINDS[1:]
    return ["time" if n % 2 == 0 else targeted[(n // 2) % len(targeted)] for n in range(trials)]


def cli_environment(prefect_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(prefect_home)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--posts", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill points")
    parser.add_argument("--rps", type=float, default=40.0, help="crawl pace (spreads fetches)")
    parser.add_argument("--json", type=Path, help="also write the trials as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args(argv)
    rng = random.Random(opts.seed)
    posts = generate_posts(opts.posts, seed=3)
    work = Path(tempfile.mkdtemp(prefix="finews-crash-"))
    env = cli_environment(work / "prefect-home")
    trials: list[Trial] = []
    with CrashReplica(render_site(posts)) as server:
        lab = CrashLab(server, posts, work, env, rps=opts.rps)
        print(
            f"replica {server.base_url}, categories {', '.join(lab.categories)}, "
            f"{len(lab.expected)} articles in {lab.batches} batches, work {work}",
            flush=True,
        )
        warm, problems = lab.uninterrupted("warm-up")  # Prefect's database is created here
        duration, more = lab.uninterrupted("baseline")
        print(f"uninterrupted run: {duration:.1f}s (first, with Prefect set-up: {warm:.1f}s)")
        for problem in problems + more:
            print(f"  baseline problem: {problem}")
        for number, kind in enumerate(plan_kinds(opts.trials), start=1):
            trial = lab.trial(number, kind, rng, duration)
            trials.append(trial)
            verdict = "ok" if trial.ok else "FAIL"
            print(
                f"trial {number:2d} {kind:12} {trial.target:40} -> {trial.phase} : {verdict}",
                flush=True,
            )
    print()
    print(table(trials))
    failed = [t for t in trials if not t.ok]
    killed = [t for t in trials if t.killed_at is not None]
    print(
        f"\n{len(trials)} trials, {len(killed)} killed mid-run, {len(failed)} with problems; "
        f"uninterrupted run {duration:.1f}s"
    )
    if opts.json:
        opts.json.write_text(json.dumps([asdict(t) for t in trials], indent=1))
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
