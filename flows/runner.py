"""Calling a flow and getting its report back, whether the run Completed or Failed."""

from __future__ import annotations

from typing import Any

from prefect import Flow

from flows.crawl import PagesFailed


def run_flow(flow: Flow[..., Any], **params: Any) -> dict[str, Any]:
    """Run ``flow`` and return its report; a run that failed without one re-raises its error."""
    state = flow(**params, return_state=True)
    data = state.result(raise_on_failure=False)
    if isinstance(data, dict):
        return data
    if isinstance(data, PagesFailed):
        return data.report
    if isinstance(data, BaseException):
        raise data
    raise RuntimeError(f"flow {flow.name} ended {state.name}: {state.message}")
