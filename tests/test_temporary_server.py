"""Prefect's temporary server, as a ``finews`` command starts it: waited for long enough,
quiet once its command is done, and never left running after it, however the command ends."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

from flows.temporary_server import STARTUP_TIMEOUT_S, TiedServer, startup_timeout
from replica.server import ReplicaServer

_POST_PATH = re.compile(r"/\d{4}/\d{2}/\d{2}/[^/]+\.html$")
_SERVER_APP = "prefect.server.api.server:create_app"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid`` from /proc, ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == pid:
            children.append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    found = _children(pid)
    for child in list(found):
        found += _descendants(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_killed_command_takes_its_temporary_server_with_it(
    server: ReplicaServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """``kill -9`` runs no exit handler, so Prefect never stops the server it started: it
    used to keep running (and holding ~190 MB) long after. Now the kernel stops it."""
    env = {**cli_env, "PREFECT_HOME": str(tmp_path / "prefect")}
    args = ["crawl", f"--site={server.base_url}", "--category", "emnews"]
    args += ["--warehouse", str(tmp_path / "wh"), "--rps", "1"]  # ~50 s of posts: still running
    log_path = tmp_path / "crawl.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    tree: list[int] = []
    try:
        deadline = time.monotonic() + 240
        # A post fetched: the run is under way, so its temporary server answered.
        while not any(_POST_PATH.search(path) for _, path, _ in server.requests):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no post fetched in 240 s"
            time.sleep(0.05)
        servers = [pid for pid in _children(process.pid) if _SERVER_APP in _cmdline(pid)]
        assert len(servers) == 1, [_cmdline(pid) for pid in _children(process.pid)]
        tree = [servers[0], *_descendants(servers[0])]

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        until = time.monotonic() + 10
        while any(_alive(pid) for pid in tree) and time.monotonic() < until:
            time.sleep(0.05)
        left = {pid: _cmdline(pid) for pid in tree if _alive(pid)}
        assert left == {}, "the temporary server outlived its command"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the extraction workers, on failure
        process.wait()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the old behaviour: do not leave it behind


def test_startup_timeout_is_generous_unless_the_operator_set_one() -> None:
    assert STARTUP_TIMEOUT_S >= 120
    assert startup_timeout() == STARTUP_TIMEOUT_S
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 30}):
        assert startup_timeout() == 30


def test_prefect_finds_the_tied_server_where_it_looks() -> None:
    """Prefect's clients call ``SubprocessASGIServer()``: the instance started here comes back,
    so Prefect does not start a second, untied server."""
    port = 1  # a key no real server uses; nothing is started
    try:
        tied = TiedServer(port)
        assert SubprocessASGIServer(port) is tied
    finally:
        SubprocessASGIServer._instances.pop(port, None)


def test_the_server_output_is_shown_until_it_is_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    """Its errors while the command runs are shown; what it logs while being stopped, after the
    command printed its result (on a busy machine: ERRORs about events it could not record
    in time), is not."""
    port = 2  # a key no real server uses; nothing is started
    try:
        tied = TiedServer(port)
        tied._forward(io.BytesIO(b"ERROR while running\n"))
        tied._stopping.set()
        tied._forward(io.BytesIO(b"ERROR while stopping\n"))
    finally:
        SubprocessASGIServer._instances.pop(port, None)
    assert capsys.readouterr().err == "ERROR while running\n"
