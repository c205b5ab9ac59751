"""Flows run from the command line: the report comes back, and Prefect's heartbeat is opt-in."""

from __future__ import annotations

import threading
from typing import Any

from prefect import flow
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from flows.runner import run_flow


def _heartbeat_threads() -> int:
    """Threads running Prefect's flow-run heartbeat loop (``flow_engine._send_heartbeats``)."""
    return sum(
        1
        for thread in threading.enumerate()
        if any(getattr(arg, "__name__", "") == "heartbeat_loop" for arg in thread._args)  # type: ignore[attr-defined]
    )


@flow(name="heartbeat-probe")
def _probe() -> dict[str, Any]:
    return {
        "frequency": get_current_settings().flows.heartbeat_frequency,
        "threads": _heartbeat_threads(),
    }


def test_command_line_runs_send_heartbeats_only_when_configured(prefect_harness: None) -> None:
    before = get_current_settings().flows.heartbeat_frequency
    assert run_flow(_probe) == {"frequency": None, "threads": 0}
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}):  # configured
        assert run_flow(_probe) == {"frequency": 60, "threads": 1}
    assert get_current_settings().flows.heartbeat_frequency == before  # only the run's own
