"""Prefect's temporary server for a command-line run: waited for long enough when several
commands start at once, and stopped with the command however the command ends."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

STARTUP_TIMEOUT_S = 180
"""How long a command waits for its temporary server unless the operator set Prefect's
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (default 20 s): three commands started
at once on a busy 2-core machine took longer than 20 s, and each failed with a traceback."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class TiedServer(SubprocessASGIServer):
    """Prefect's temporary server, stopped by the kernel (SIGTERM) when the command dies.

    Prefect stops it from an ``atexit`` handler, which a process killed with SIGKILL (or by
    the OOM killer) never runs: such a command's server went on serving nobody, holding
    ~190 MB, until someone noticed. The command line is Prefect's own
    (``SubprocessASGIServer._run_uvicorn_command``, Prefect 3.9); only the parent-death
    signal is added, and its stderr goes through this process (``_forward``). Instances live
    in the base class's ``_instances``, so the ``SubprocessASGIServer()`` that Prefect's
    clients call returns the one started here.
    """

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        if not hasattr(self, "_stopping"):  # __init__ runs again for each TiedServer()
            self._stopping = threading.Event()

    def stop(self) -> None:
        """Prefect's stop (SIGTERM, then SIGKILL after 5 s), with the server's output dropped
        from now on: the command has printed its result, and on a busy machine a server
        stopped while recording the last task runs logs ERRORs and tracebacks about it
        (``task_run_recorder - Error flushing 1 events``), which made a successful run look
        failed."""
        self._stopping.set()
        super().stop()

    def _forward(self, pipe: IO[bytes]) -> None:
        """Copy the server's stderr to this process's until ``stop`` (its errors while the
        command runs are still shown, as when the server wrote there itself)."""
        with pipe:
            for line in iter(pipe.readline, b""):
                if self._stopping.is_set():
                    continue
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(line.decode(errors="replace"))
                    sys.stderr.flush()

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        server_env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        process = subprocess.Popen(
            args=[
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
            preexec_fn=parent_death_signal(os.getpid()),
            stderr=subprocess.PIPE,
        )
        # Prefect's start() reads the server's stderr to the end when it times out, which
        # would wait for a server it has not stopped: it finds none, the forwarder has it.
        pipe, process.stderr = process.stderr, None
        assert pipe is not None
        threading.Thread(
            target=self._forward, args=(pipe,), name="temporary-server-stderr", daemon=True
        ).start()
        return process


def start_tied_server() -> SubprocessASGIServer:
    """Start this process's temporary server (once), waiting up to ``startup_timeout()``.

    A server some other code already started is left as it is; one made but not started is
    replaced by a ``TiedServer``.
    """
    current = SubprocessASGIServer._instances.get(None)
    if current is not None and current.running:
        return current
    if current is not None and not isinstance(current, TiedServer):
        del SubprocessASGIServer._instances[None]
    server = TiedServer()
    server.start(timeout=startup_timeout())
    return server


def startup_timeout() -> int:
    """``STARTUP_TIMEOUT_S``, unless a settings source (environment, profile, ``prefect.toml``)
    names Prefect's own: the operator's choice stays."""
    ephemeral = get_current_settings().server.ephemeral
    if "startup_timeout_seconds" in ephemeral.model_fields_set:
        return ephemeral.startup_timeout_seconds
    return STARTUP_TIMEOUT_S


def parent_death_signal(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when ``parent`` dies; ``None``
    where that is not to be had (not Linux, or not called on the main thread).

    Linux sends the signal when the *thread* that started the child ends, so only the main
    thread asks for it: a server started from another thread would stop with that thread.
    If the parent died before ``prctl`` took effect, the child exits before starting the
    server. libc's ``prctl`` is looked up here, before the fork; the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigterm = int(signal.SIGTERM)

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return tie
