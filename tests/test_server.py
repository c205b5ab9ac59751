"""The deployments as operators run them: a real Prefect server, real processes, the replica.

One Prefect server (SQLite in a private PREFECT_HOME) is started for the module. Two ways of
running the flows are exercised against it:

- ``finews serve``: registers crawl/scheduled, backfill/manual and compact/daily and executes
  their runs in one long-running process;
- ``prefect.yaml``: ``prefect deploy --all`` to a ``process`` work pool, runs executed by
  ``prefect worker start``.

The server runs without its scheduler service: the crawl schedule (every ten minutes) would
otherwise start a crawl of the whole replica whenever the test crosses a ten-minute mark and
make the counts below depend on the clock. Schedules are still stored and checked as data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
import yaml

from flows.deployments import (
    BACKFILL_DEPLOYMENT,
    COMPACT_DEPLOYMENT,
    CRAWL_DEPLOYMENT,
    build_deployments,
)
from flows.schedules import CRAWL_CRON, TIMEZONE
from replica.posts import SHANGHAI, Post
from replica.server import ReplicaServer
from warehouse import connect

ROOT = Path(__file__).resolve().parent.parent
FINEWS = [sys.executable, "-m", "flows.cli"]
PREFECT = [sys.executable, "-m", "prefect"]
DEPLOYMENTS = (CRAWL_DEPLOYMENT, BACKFILL_DEPLOYMENT, COMPACT_DEPLOYMENT)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SERVER_START_TIMEOUT = 90.0
RUN_TIMEOUT = 120.0

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# processes


@dataclass
class Started:
    """A process this module started: its own session, output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: int) -> None:
        """Signal the whole process group, as a terminal's Ctrl-C or a service manager does."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """signal → wait → kill; returns the exit status of the process itself."""
        if self.alive():
            self.send(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.process.wait(10)
        # Flow-run children left behind in the group go too.
        self.send(signal.SIGKILL)
        return self.process.returncode


@dataclass
class Processes:
    """Every process a test starts; all stopped at teardown, whatever happened."""

    directory: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> Started:
        log = self.directory / f"{name}-{len(self.started)}.log"
        handle = log.open("wb")
        # A child inherits an ignored SIGINT (pytest started in the background by a shell);
        # make Ctrl-C reach it as it would from a terminal.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
            handle.close()
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def logs(self) -> str:
        return "\n".join(started.tail() for started in self.started)

    def stop_all(self) -> None:
        for started in reversed(self.started):
            started.stop(timeout=15)


@contextmanager
def processes(directory: Path) -> Iterator[Processes]:
    directory.mkdir(parents=True, exist_ok=True)
    running = Processes(directory)
    try:
        yield running
    finally:
        running.stop_all()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    logs: Callable[[], str],
    interval: float = 0.5,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")
        time.sleep(interval)


def _base_env() -> dict[str, str]:
    """The test's environment without any Prefect or finews setting of the caller's."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "FINEWS_"))
    }


# ---------------------------------------------------------------------------------------------
# the Prefect server


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    process: Started

    def env(self, **extra: str) -> dict[str, str]:
        env = _base_env()
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    @contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: self.api_url}),
            get_client(sync_client=True) as client,
        ):
            yield client


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    base = tmp_path_factory.mktemp("prefect-server")
    home = base / "home"
    home.mkdir()
    port = _free_port()
    env = _base_env()
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    with processes(base / "logs") as running:
        started = running.start(
            "prefect-server",
            [
                *PREFECT,
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
                "--no-scheduler",
                "--analytics-off",
            ],
            env,
        )
        health = f"http://127.0.0.1:{port}/api/health"

        def ready() -> bool:
            if not started.alive():
                pytest.fail(f"prefect server exited early\n{started.tail()}")
            return _healthy(health)

        _wait("the Prefect server", ready, SERVER_START_TIMEOUT, started.tail, interval=0.5)
        yield PrefectServer(f"http://127.0.0.1:{port}/api", home, started)


# ---------------------------------------------------------------------------------------------
# Prefect API helpers


def _deployments(client: Any) -> dict[str, Any] | None:
    from prefect.exceptions import ObjectNotFound

    found = {}
    for name in DEPLOYMENTS:
        try:
            found[name] = client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
    return found


def _trigger(client: Any, deployment: Any, parameters: dict[str, Any]) -> UUID:
    run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    return run.id


def _trigger_cli(server: PrefectServer, name: str, params: list[str]) -> UUID:
    """`prefect deployment run NAME --param k=v …`, as the operations guide says."""
    args = [*PREFECT, "deployment", "run", name]
    for param in params:
        args += ["--param", param]
    result = subprocess.run(
        args, cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
    assert match, result.stdout
    return UUID(match.group(1))


def _final_states(
    server: PrefectServer, run_ids: list[UUID], logs: Callable[[], str]
) -> dict[UUID, Any]:
    def probe() -> dict[UUID, Any] | None:
        with server.client() as client:
            runs = {run_id: client.read_flow_run(run_id) for run_id in run_ids}
        if all(run.state and run.state.type.value in FINAL for run in runs.values()):
            return runs
        return None

    return _wait("the flow runs to finish", probe, RUN_TIMEOUT, logs, interval=1.0)


def _artifacts(client: Any, run_id: UUID) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )


def _report(client: Any, run_id: UUID) -> str:
    reports = [a for a in _artifacts(client, run_id) if a.key == "finews-run-report"]
    assert len(reports) == 1, [(a.key, a.type) for a in _artifacts(client, run_id)]
    assert reports[0].type == "markdown"
    return str(reports[0].data)


def _errors_logged(client: Any, run_id: UUID) -> list[str]:
    """ERROR (and worse) lines in a flow run's logs, as `prefect flow-run logs` shows them."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel

    logs = client.read_logs(
        log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[run_id]), level=LogFilterLevel(ge_=40)
        )
    )
    return [log.message for log in logs]


def _check_schedules(deployments: dict[str, Any]) -> None:
    crawl, backfill, compact = (deployments[name] for name in DEPLOYMENTS)
    for deployment in (crawl, backfill, compact):
        assert not deployment.paused, deployment.name
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in crawl.schedules] == [
        (CRAWL_CRON, TIMEZONE, True)
    ]
    assert backfill.schedules == []
    [daily] = compact.schedules
    assert daily.active and daily.schedule.timezone == TIMEZONE
    minute, hour, *rest = daily.schedule.cron.split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"], daily.schedule.cron
    for deployment, strategy in (
        (crawl, "CANCEL_NEW"),
        (backfill, "ENQUEUE"),
        (compact, "CANCEL_NEW"),
    ):
        assert deployment.global_concurrency_limit is not None, deployment.name
        assert deployment.global_concurrency_limit.limit == 1, deployment.name
        assert deployment.concurrency_options.collision_strategy.value == strategy


# ---------------------------------------------------------------------------------------------
# the replica and the warehouse


def _day(post: Post) -> dt.date:
    return post.published_at.astimezone(SHANGHAI).date()


def _backfill_plan(posts: list[Post]) -> tuple[str, dt.date, dt.date, set[str]]:
    """An outlet sharing no story with emnews, and a range that leaves some of its posts out."""
    emnews = {p.info_code for p in posts if p.category == "emnews"}
    candidates = []
    for category in sorted({p.category for p in posts} - {"emnews"}):
        own = [p for p in posts if p.category == category]
        days = sorted({_day(p) for p in own})
        if " " in category or emnews & {p.info_code for p in own} or len(days) < 2:
            continue
        candidates.append((len(own), category, days))
    assert candidates, "the replica has an outlet for the backfill"
    _, category, days = max(candidates)
    since, until = days[1], days[-1]
    expected = {p.info_code for p in posts if p.category == category and since <= _day(p) <= until}
    return category, since, until, expected


def _query(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with connect(warehouse) as connection:
        return connection.execute(sql).fetchall()


def _landed(warehouse: Path) -> Counter[str]:
    """info_code → number of times it landed: the raw pages stored for it (one per landed
    fetch), checked against the rows of ``articles`` (one per info_code)."""
    stored = Counter(
        dict(_query(warehouse, "SELECT info_code, count(*) FROM raw_pages GROUP BY 1"))
    )
    rows = Counter(dict(_query(warehouse, "SELECT info_code, count(*) FROM articles GROUP BY 1")))
    assert set(rows) == set(stored) and set(rows.values()) <= {1}, "one row per landed article"
    return stored


def _codes_in(warehouse: Path, category: str) -> set[str]:
    rows = _query(
        warehouse,
        f"SELECT info_code FROM articles WHERE list_contains(categories, '{category}')",
    )
    return {row[0] for row in rows}


# ---------------------------------------------------------------------------------------------
# finews serve


def test_finews_serve_runs_the_deployments(
    prefect_server: PrefectServer,
    posts: list[Post],
    server: ReplicaServer,
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse"
    serve_args = [
        *FINEWS,
        "serve",
        "--site",
        server.base_url,
        "--warehouse",
        str(warehouse),
        "--rps",
        "0",
    ]
    # The runner looks for due runs every 10 s by default; poll faster to keep the test short.
    serve_env = prefect_server.env(PREFECT_RUNNER_POLL_FREQUENCY="2")

    with processes(tmp_path / "logs") as running:

        def logs() -> str:
            return running.logs() + "\n" + prefect_server.process.tail(20)

        serve = running.start("finews-serve", serve_args, serve_env)

        def registered() -> dict[str, Any] | None:
            if not serve.alive():
                pytest.fail(f"finews serve exited\n{logs()}")
            with prefect_server.client() as client:
                return _deployments(client)

        deployments = _wait("the three deployments", registered, 60, logs)
        _check_schedules(deployments)
        defaults = deployments[CRAWL_DEPLOYMENT].parameters
        assert defaults["site"] == server.base_url
        assert defaults["warehouse"] == str(warehouse.resolve())
        assert defaults["rps"] == 0

        # A crawl of emnews and a date-bounded backfill of another outlet, at the same time.
        category, since, until, backfill_expected = _backfill_plan(posts)
        with prefect_server.client() as client:
            crawl_id = _trigger(client, deployments[CRAWL_DEPLOYMENT], {"categories": ["emnews"]})
        backfill_id = _trigger_cli(
            prefect_server,
            BACKFILL_DEPLOYMENT,
            [f"categories={json.dumps([category])}", f"since={since}", f"until={until}"],
        )
        runs = _final_states(prefect_server, [crawl_id, backfill_id], logs)
        for run_id, run in runs.items():
            assert run.state.type.value == "COMPLETED", (run_id, run.state, logs())

        emnews = {p.info_code for p in posts if p.category == "emnews"}
        landed = _landed(warehouse)
        assert {code: landed[code] for code in emnews} == dict.fromkeys(emnews, 1)
        assert _codes_in(warehouse, "emnews") == emnews
        assert _codes_in(warehouse, category) == backfill_expected
        assert set(landed) == emnews | backfill_expected
        assert sum(landed.values()) == len(landed), "no article landed twice"
        rows = _query(
            warehouse, "SELECT flow, status, categories, new_articles, failures FROM runs"
        )
        assert sorted(rows) == [
            ("backfill", "completed", [category], len(backfill_expected), 0),
            ("crawl", "completed", ["emnews"], len(emnews), 0),
        ]

        with prefect_server.client() as client:
            crawl_report = _report(client, crawl_id)
            backfill_report = _report(client, backfill_id)
            progress = [a for a in _artifacts(client, backfill_id) if a.type == "progress"]
            errors = {run_id: _errors_logged(client, run_id) for run_id in runs}
        assert errors == {run_id: [] for run_id in runs}, "a completed run logs no ERROR"
        assert "finews crawl run" in crawl_report
        assert f"| new articles | {len(emnews)} |" in crawl_report
        assert f"| references seen | {len(emnews)} |" in crawl_report
        assert "| failures | 0 |" in crawl_report
        assert "finews backfill run" in backfill_report
        assert f"| new articles | {len(backfill_expected)} |" in backfill_report
        assert "| failures | 0 |" in backfill_report
        assert [float(a.data) for a in progress] == [100.0]

        # A bad parameter fails the run with the setting's name, before any request.
        requests_before = len(server.requests)
        with prefect_server.client() as client:
            bad_id = _trigger(
                client, deployments[CRAWL_DEPLOYMENT], {"categories": ["emnews"], "rps": -1}
            )
        bad = _final_states(prefect_server, [bad_id], logs)[bad_id]
        assert bad.state.type.value == "FAILED", bad.state
        assert "setting 'rps'" in (bad.state.message or ""), bad.state.message
        assert len(server.requests) == requests_before, server.requests[requests_before:]
        assert len(_query(warehouse, "SELECT * FROM runs")) == 2

        # Stopping the process (graceful: exit status 0) leaves the schedules active ...
        assert serve.stop(signal.SIGINT, timeout=30) == 0, logs()
        with prefect_server.client() as client:
            stopped = _deployments(client)
        assert stopped is not None
        _check_schedules(stopped)

        # ... and a restarted process serves the same deployments again.
        restarted_at = dt.datetime.now(dt.UTC)
        again = running.start("finews-serve", serve_args, serve_env)

        def polling() -> dict[str, Any] | None:
            if not again.alive():
                pytest.fail(f"finews serve exited after the restart\n{logs()}")
            with prefect_server.client() as client:
                found = _deployments(client)
            crawl = found and found[CRAWL_DEPLOYMENT]
            if crawl and crawl.last_polled and crawl.last_polled > restarted_at:
                return found
            return None

        after = _wait("the restarted finews serve to poll", polling, 60, logs)
        _check_schedules(after)
        assert after[CRAWL_DEPLOYMENT].status.value == "READY"
        assert again.stop(signal.SIGTERM, timeout=30) == 0, logs()


# ---------------------------------------------------------------------------------------------
# prefect.yaml: work pool and workers


def _prefect_file(tmp_path: Path) -> Path:
    """prefect.yaml as committed, its working directory pointed at this checkout if elsewhere."""
    source = ROOT / "prefect.yaml"
    text = source.read_text(encoding="utf-8")
    pattern = re.compile(r"^(\s*directory:\s*)(\S+)\s*$", re.MULTILINE)
    match = pattern.search(text)
    assert match, "prefect.yaml sets the working directory in its pull step"
    if Path(match.group(2)) == ROOT:
        return source
    copy = tmp_path / "prefect.yaml"
    copy.write_text(pattern.sub(lambda m: f"{m.group(1)}{ROOT}", text), encoding="utf-8")
    return copy


def _described(deployment: Any) -> dict[str, Any]:
    """What prefect.yaml and flows/deployments.py must agree on, from either's deployment."""
    limit = deployment["concurrency_limit"]
    return {
        "entrypoint": deployment["entrypoint"],
        "description": deployment["description"],
        "tags": list(deployment["tags"]),
        "schedules": [
            (s["cron"], s["timezone"], s["active"]) for s in deployment.get("schedules") or []
        ],
        "concurrency": (limit["limit"], limit["collision_strategy"]),
    }


def test_prefect_yaml_and_the_deployments_as_code_agree() -> None:
    """The two ways to deploy (prefect.yaml, ``finews serve``) register the same deployments."""
    in_yaml = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    from_yaml = {f"{d['entrypoint'].rsplit(':', 1)[1]}/{d['name']}": _described(d) for d in in_yaml}
    from_code = {
        f"{d.flow_name}/{d.name}": _described(
            {
                "entrypoint": d.entrypoint,
                "description": d.description,
                "tags": d.tags,
                "schedules": [
                    {"cron": s.schedule.cron, "timezone": s.schedule.timezone, "active": s.active}
                    for s in d.schedules
                ],
                "concurrency_limit": {
                    "limit": d.concurrency_limit,
                    "collision_strategy": d.concurrency_options.collision_strategy.value,
                },
            }
        )
        for d in build_deployments(defaults={})
    }
    assert list(from_code) == list(DEPLOYMENTS)
    assert from_yaml == from_code


def test_prefect_yaml_deploys_to_a_process_work_pool(
    prefect_server: PrefectServer,
    posts: list[Post],
    server: ReplicaServer,
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse"
    env = prefect_server.env()

    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*PREFECT, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    with prefect_server.client() as client:
        pools = {pool.name for pool in client.read_work_pools()}
    if "finews" not in pools:
        cli("work-pool", "create", "finews", "--type", "process")
    prefect_file = _prefect_file(tmp_path)
    before = (ROOT / "prefect.yaml").read_bytes()
    cli("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file))
    assert (ROOT / "prefect.yaml").read_bytes() == before, "deploy must not rewrite the file"

    with prefect_server.client() as client:
        deployments = _deployments(client)
    assert deployments is not None
    _check_schedules(deployments)
    for name, entrypoint in zip(
        DEPLOYMENTS,
        ("flows/crawl.py:crawl", "flows/crawl.py:backfill", "flows/maintenance.py:compact"),
        strict=True,
    ):
        deployment = deployments[name]
        assert deployment.work_pool_name == "finews"
        assert deployment.entrypoint == entrypoint
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]

    category, *_ = _backfill_plan(posts)
    expected = {p.info_code for p in posts if p.category == category}
    run_id = _trigger_cli(
        prefect_server, CRAWL_DEPLOYMENT, [f"categories={json.dumps([category])}"]
    )

    # The worker's environment tells the flows where to crawl and land (FINEWS_* settings).
    worker_env = prefect_server.env(
        FINEWS_SITE=server.base_url, FINEWS_WAREHOUSE=str(warehouse), FINEWS_RPS="0"
    )
    with processes(tmp_path / "logs") as running:
        worker = running.start(
            "prefect-worker",
            [*PREFECT, "worker", "start", "--pool", "finews", "--run-once"],
            worker_env,
            cwd=tmp_path,
        )
        try:
            worker.process.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not finish its run\n{running.logs()}")
        assert worker.process.returncode == 0, running.logs()
        run = _final_states(prefect_server, [run_id], running.logs)[run_id]
        assert run.state.type.value == "COMPLETED", (run.state, running.logs())

    assert _codes_in(warehouse, category) == expected
    assert _query(warehouse, "SELECT flow, status, site FROM runs") == [
        ("crawl", "completed", server.base_url)
    ]
    with prefect_server.client() as client:
        report = _report(client, run_id)
        errors = _errors_logged(client, run_id)
    assert f"| new articles | {len(expected)} |" in report
    assert errors == [], "a completed run logs no ERROR"
