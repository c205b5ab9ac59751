"""Calling a flow from the command line and getting its report back, Completed or Failed."""

from __future__ import annotations

import signal
from typing import Any

from prefect import Flow
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from flows.run_report import PagesFailed


def run_flow(flow: Flow[..., Any], **params: Any) -> dict[str, Any]:
    """Run ``flow`` in this process and return its report; a run that failed without one
    re-raises its error.

    A run started here sends no flow-run heartbeats unless the operator configured them
    (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in the environment, a profile or ``prefect.toml``).
    Prefect uses heartbeats to mark runs of deployments whose machine died as crashed, with an
    automation the operator creates; on by default since Prefect 3.9, Prefect's heartbeat
    thread holds every run's exit for up to 1 s (it sleeps in 1 s steps). Runs of deployments
    (``finews serve``) do not come through here and keep Prefect's setting.
    """
    _start_temporary_server()
    with temporary_settings(updates=_heartbeat_updates()):
        state = flow(**params, return_state=True)
    data = state.result(raise_on_failure=False)
    if isinstance(data, dict):
        return data
    if isinstance(data, PagesFailed):
        return data.report
    if isinstance(data, BaseException):
        raise data
    raise RuntimeError(f"flow {flow.name} ended {state.name}: {state.message}")


def _heartbeat_updates() -> dict[Any, Any]:
    """No heartbeats, unless a settings source names the frequency (then that stays)."""
    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:
        return {}
    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


def _start_temporary_server() -> None:
    """With no Prefect server configured, start Prefect's temporary one now, with SIGINT blocked.

    The server process inherits the blocked signal: Ctrl-C in the terminal, which reaches the
    whole process group, then interrupts the run and not the server the run reports its end
    to (an interrupted run used to retry a server that was gone for over a minute, then print
    a traceback). Prefect still stops the server at exit, with SIGTERM; the run starts the
    same server later, as it would have (``SubprocessASGIServer.start`` starts it once).
    ``flows.temporary_server`` waits longer for it than Prefect does, and ties it to this
    process.
    """
    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return
    from flows.temporary_server import start_tied_server

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        start_tied_server()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
