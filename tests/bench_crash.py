"""Crash trials: ``finews crawl`` killed with SIGKILL at random points, then rerun to completion.

Usage (from the repository root; not collected by pytest, ``tests/test_crash.py`` runs 3)::

    .venv/bin/python tests/bench_crash.py --trials 20 [--posts 120] [--seed 1] [--json PATH]

A replica of the site runs on loopback in this process; each trial crawls a fresh warehouse
with ``finews crawl`` started in its own session (``start_new_session=True``) and kills the
whole process group (the CLI, its Prefect server, any worker) with SIGKILL:

- ``time``: at a time drawn uniformly between 0.5 s and the duration of an uninterrupted run
  (measured first: Prefect's start-up is a good part of it);
- ``fetch``: once the replica has answered the k-th post request (k drawn at random);
- ``parquet-write``: when a hidden temporary Parquet file is seen after the j-th landed file
  (or, if the writes are too quick to be seen, right after the (j+3)-th file appeared);
- ``catalog-refresh``: when the catalog's temporary file is seen, or the run's ``runs`` row
  (written just before the catalog refresh) has landed.

Right after the kill the visible Parquet files must all be readable and the views must work
on them; hidden temporary files left behind are aged by two hours (the next run's cleanup
must remove them) and a young fake one is planted (it must stay, unmatched by the views).
Then the same command runs to completion and the warehouse is checked: the catalog and every
view readable with DuckDB, every listed article present exactly once (in the view and in the
files), nothing in the retry queue, no visible stray or unreadable ``*.parquet``, no hidden
temporary file matched by the views' ``**/*.parquet`` globs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from replica import ReplicaServer, generate_posts, render_site  # noqa: E402
from replica.faults import is_post_path  # noqa: E402
from replica.posts import Post  # noqa: E402
from warehouse.catalog import CATALOG_NAME, views_sql  # noqa: E402
from warehouse.snapshot import data_files  # noqa: E402

KINDS = ("time", "fetch", "parquet-write", "catalog-refresh")
VIEWS = (
    "articles",
    "article_versions",
    "sightings",
    "fetch_log",
    "failures",
    "runs",
    "raw_pages",
    "listing_state",
    "page_failures",
    "retry_queue",
    "dead_pages",
)
CONFIG = """\
batch_size = 5
extract_workers = 1
retries = 2
backoff_base = 0.05
backoff_max = 1.0
read_timeout = 10.0
"""
RUN_TIMEOUT_S = 240.0
POLL_S = 0.001
AGED_S = 2 * 3600
PLANTED = ".part-planted-by-crash-test.parquet.deadbeef.tmp"
_TEMP_PARQUET = re.compile(r"^\..+\.parquet\.[0-9a-f]+\.tmp$")
_TEMP_CATALOG = re.compile(rf"^\.{re.escape(CATALOG_NAME)}\.[0-9a-f]+\.tmp(\.wal)?$")
_VISIBLE_PARQUET = re.compile(r"^(part-[A-Za-z0-9T._-]+|_schema)\.parquet$")


def pick_categories(posts: list[Post], outlets: int = 2) -> list[str]:
    """emnews and the largest outlets with a one-word slug."""
    sizes: dict[str, int] = {}
    for post in posts:
        if post.category != "emnews" and " " not in post.category:
            sizes[post.category] = sizes.get(post.category, 0) + 1
    ranked = sorted(sizes, key=lambda slug: (-sizes[slug], slug))
    return ["emnews", *ranked[:outlets]]


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


def _walk(root: Path) -> Iterable[tuple[str, list[str]]]:
    """(folder, file names) under ``root``, skipping hidden folders (``.state`` and the like)."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield folder, names


def hidden_temps(root: Path) -> list[Path]:
    """Temporary files of the writers (``.<name>.<hex>.tmp``, a catalog's ``.tmp.wal``)."""
    return [
        Path(folder, name)
        for folder, names in _walk(root)
        for name in names
        if name.startswith(".") and ".tmp" in name
    ]


def visible_parts(root: Path) -> int:
    return sum(
        1
        for _, names in _walk(root)
        for name in names
        if name.startswith("part-") and name.endswith(".parquet")
    )


@dataclass
class Trial:
    number: int
    kind: str
    target: str
    killed_at: float | None = None
    phase: str = ""
    post_requests: int = 0
    temps_left: int = 0
    rerun_status: int | None = None
    rerun_s: float = 0.0
    articles: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class CrashLab:
    """One replica, one Prefect home, one config; trials in fresh warehouses under ``work``."""

    def __init__(
        self,
        server: ReplicaServer,
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
        self.expected = {p.info_code for p in posts if p.category in self.categories}
        self.config = work / "crash.toml"
        self.config.write_text(CONFIG)

    def command(self, warehouse: Path) -> list[str]:
        return finews_command(
            self.server.base_url, warehouse, self.categories, self.config, self.rps
        )

    def post_requests(self, since: int = 0) -> int:
        return sum(
            1 for _, path, _ in self.server.requests[since:] if is_post_path(urlsplit(path).path)
        )

    def uninterrupted(self, name: str) -> tuple[float, list[str]]:
        """Run once without a kill: (wall seconds, problems)."""
        warehouse = self.work / name / "warehouse"
        status, elapsed = run_to_completion(
            self.command(warehouse), self.env, self.work / f"{name}.log"
        )
        problems = [] if status == 0 else [f"exit {status}: {self._tail(name)}"]
        return elapsed, problems + check_warehouse(warehouse, self.expected)

    def trial(self, number: int, kind: str, rng: random.Random, duration: float) -> Trial:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        name = f"trial-{number:02d}"
        warehouse = self.work / name / "warehouse"
        deadline = rng.uniform(0.5, max(0.6, duration))
        k = rng.randint(1, len(self.expected))
        j = rng.randint(0, 12)
        target = {
            "time": f"t={deadline:.2f}s",
            "fetch": f"post request #{k}",
            "parquet-write": f"temp parquet after {j} files",
            "catalog-refresh": "catalog temp or runs row",
        }[kind]
        trial = Trial(number, kind, target)
        before = len(self.server.requests)
        started = time.monotonic()
        with (self.work / f"{name}-killed.log").open("wb") as out:
            proc = subprocess.Popen(
                self.command(warehouse),
                env=self.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            try:
                while proc.poll() is None:
                    elapsed = time.monotonic() - started
                    if elapsed > RUN_TIMEOUT_S:
                        trial.problems.append("killed run overran")
                        break
                    if kind == "time" and elapsed >= deadline:
                        break
                    if kind == "fetch" and self.post_requests(before) >= k:
                        break
                    if kind == "parquet-write" and warehouse.exists():
                        parts = visible_parts(warehouse)
                        temps = [t for t in hidden_temps(warehouse) if _TEMP_PARQUET.match(t.name)]
                        if (temps and parts >= j) or parts >= j + 3:
                            break
                    if kind == "catalog-refresh" and warehouse.exists():
                        names = os.listdir(warehouse)
                        if any(_TEMP_CATALOG.match(n) for n in names) or any(
                            n.startswith("part-") for n in _listdir(warehouse / "runs")
                        ):
                            break
                    time.sleep(POLL_S if kind != "time" else 0.005)
                if proc.poll() is None:
                    trial.killed_at = time.monotonic() - started
                    trial.phase = self._phase(warehouse, before)
            finally:
                kill_group(proc)
        if trial.killed_at is None:
            trial.phase = f"finished (exit {proc.returncode}) before the kill"
        trial.post_requests = self.post_requests(before)
        leftovers = hidden_temps(warehouse) if warehouse.exists() else []
        trial.temps_left = len(leftovers)
        trial.problems += check_after_kill(warehouse)
        aged = []
        for temp in leftovers:
            stamp = time.time() - AGED_S
            os.utime(temp, (stamp, stamp))
            aged.append(temp)
        planted = None
        if (warehouse / "articles").is_dir():
            planted = warehouse / "articles" / PLANTED
            planted.write_bytes(b"PAR1 half a parquet file")
        trial.rerun_status, trial.rerun_s = run_to_completion(
            self.command(warehouse), self.env, self.work / f"{name}-rerun.log"
        )
        if trial.rerun_status != 0:
            trial.problems.append(f"rerun exit {trial.rerun_status}: {self._tail(name)}")
        trial.problems += check_warehouse(warehouse, self.expected, aged=aged, planted=planted)
        with contextlib.suppress(duckdb.Error):
            trial.articles = _catalog_rows(warehouse, "SELECT count(*) FROM articles")[0][0]
        return trial

    def _phase(self, warehouse: Path, before: int) -> str:
        """What the killed run was doing, from what can be seen from outside."""
        if not warehouse.exists():
            return "start-up (no warehouse yet)"
        temps = [t.name for t in hidden_temps(warehouse)]
        if any(_TEMP_CATALOG.match(n) for n in temps):
            return "catalog refresh (temp catalog)"
        if any(_TEMP_PARQUET.match(n) for n in temps):
            return "parquet write (temp file)"
        if any(n.startswith("part-") for n in _listdir(warehouse / "runs")):
            return "runs row landed, catalog next"
        posts = self.post_requests(before)
        if posts == 0:
            return "start-up / listing"
        if posts < len(self.expected):
            return f"fetching ({posts}/{len(self.expected)} posts)"
        return "landing the last batches"

    def _tail(self, name: str) -> str:
        logs = sorted(self.work.glob(f"{name}*.log"), key=lambda p: p.stat().st_mtime)
        text = logs[-1].read_text(errors="replace") if logs else ""
        return " | ".join(text.strip().splitlines()[-3:])[-400:]


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _catalog_rows(warehouse: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(warehouse / CATALOG_NAME), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _visible_files(root: Path) -> list[Path]:
    return [Path(folder, name) for folder, names in _walk(root) for name in names if name[0] != "."]


def _parquet_problems(root: Path) -> list[str]:
    problems = []
    for path in _visible_files(root):
        relative = path.relative_to(root)
        if path.name == CATALOG_NAME and path.parent == root:
            continue
        if not _VISIBLE_PARQUET.match(path.name):
            problems.append(f"stray visible file {relative}")
            continue
        try:
            pq.read_metadata(path)
        except Exception as exc:
            problems.append(f"unreadable {relative}: {type(exc).__name__}: {exc}")
    return problems


def _glob_problems(connection: duckdb.DuckDBPyConnection, root: Path) -> list[str]:
    matched = connection.execute(f"SELECT file FROM glob('{root}/**/*.parquet')").fetchall()
    return [
        f"views' glob matches hidden/temporary {file}"
        for (file,) in matched
        if Path(file).name.startswith(".") or file.endswith(".tmp")
    ]


def check_after_kill(warehouse: Path) -> list[str]:
    """Straight after the kill: what is visible is whole, and the views work on it."""
    if not warehouse.exists():
        return []
    problems = [f"after kill: {p}" for p in _parquet_problems(warehouse)]
    if (warehouse / "articles").is_dir() and (warehouse / "runs").is_dir():
        try:
            with duckdb.connect() as connection:
                connection.execute(views_sql(warehouse))
                for view in VIEWS:
                    connection.execute(f"SELECT count(*) FROM {view}").fetchall()
                problems += [f"after kill: {p}" for p in _glob_problems(connection, warehouse)]
        except duckdb.Error as exc:
            problems.append(f"after kill: views fail: {str(exc).splitlines()[0]}")
    return problems


def check_warehouse(
    warehouse: Path,
    expected: set[str],
    *,
    aged: Iterable[Path] = (),
    planted: Path | None = None,
) -> list[str]:
    """After a completed run: catalog, views, exactly-once articles, no stray files."""
    problems = _parquet_problems(warehouse)
    try:
        with duckdb.connect(str(warehouse / CATALOG_NAME), read_only=True) as connection:
            for view in VIEWS:
                connection.execute(f"SELECT count(*) FROM {view}").fetchall()
            counts = dict(
                connection.execute(
                    "SELECT info_code, count(*) FROM articles GROUP BY info_code"
                ).fetchall()
            )
            # The table's data files: a delta merge's retired sources (kept on disk for a
            # grace period, read by no catalog: warehouse/retired.py) hold copies by design.
            data = [
                str(warehouse / "articles" / name) for name in data_files(warehouse, "articles")
            ]
            files = (
                connection.execute(
                    "SELECT info_code, count(*) FROM read_parquet(?) GROUP BY info_code "
                    "HAVING count(*) > 1",
                    [data],
                ).fetchall()
                if data
                else []
            )
            queued = connection.execute("SELECT url, last_reason FROM retry_queue").fetchall()
            dead = connection.execute("SELECT url, last_reason FROM dead_pages").fetchall()
            runs = connection.execute("SELECT status FROM runs").fetchall()
            problems += _glob_problems(connection, warehouse)
    except duckdb.Error as exc:
        return [*problems, f"catalog unreadable: {str(exc).splitlines()[0]}"]
    if missing := expected - set(counts):
        problems.append(f"{len(missing)} listed article(s) missing, e.g. {sorted(missing)[:3]}")
    if extra := set(counts) - expected:
        problems.append(f"{len(extra)} unexpected article(s), e.g. {sorted(extra)[:3]}")
    if twice := [code for code, n in counts.items() if n != 1]:
        problems.append(f"articles view repeats {twice[:3]}")
    if files:
        problems.append(f"article files repeat {len(files)} info_code(s), e.g. {files[:3]}")
    if queued or dead:
        problems.append(f"failures left: {[*queued, *dead][:3]}")
    if ("completed",) not in runs:
        problems.append(f"no completed run recorded: {runs}")
    for temp in aged:
        if temp.exists():
            problems.append(f"stale temp not cleaned up: {temp.relative_to(warehouse)}")
    if planted is not None and not planted.exists():
        problems.append("a young temp file was removed (a concurrent writer's file)")
    return problems


# -- the bench -------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return str(value).replace("|", "/")


def table(trials: list[Trial]) -> str:
    head = (
        "| # | kind | target | killed at | phase at kill | posts asked | temps left "
        "| rerun | rerun s | articles | outcome |"
    )
    lines = [head, "|" + "---|" * 11]
    for t in trials:
        killed = f"{t.killed_at:.2f}s" if t.killed_at is not None else "-"
        outcome = "ok" if t.ok else "FAIL: " + "; ".join(t.problems)
        cells = [
            t.number,
            t.kind,
            t.target,
            killed,
            t.phase,
            t.post_requests,
            t.temps_left,
            t.rerun_status,
            f"{t.rerun_s:.1f}",
            t.articles,
            outcome,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def plan_kinds(trials: int) -> list[str]:
    """Half of the trials at uniform times, the rest cycling through the targeted phases."""
    targeted = ("fetch", "parquet-write", "catalog-refresh")
    return ["time" if n % 2 == 0 else targeted[(n // 2) % 3] for n in range(trials)]


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
    with ReplicaServer(render_site(posts)) as server:
        lab = CrashLab(server, posts, work, env, rps=opts.rps)
        print(
            f"replica {server.base_url}, categories {', '.join(lab.categories)}, "
            f"{len(lab.expected)} articles, work {work}",
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
                f"trial {number:2d} {kind:15} {trial.target:28} -> {trial.phase} : {verdict}",
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
