"""Run reports in Prefect: a Markdown artifact per run and a progress artifact for backfills."""

from __future__ import annotations

import uuid
from typing import Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from flows.output import run_counts

REPORT_KEY = "finews-run-report"


def report_markdown(report: dict[str, Any]) -> str:
    """A run's report as the Markdown artifact Prefect shows (failures: first 20)."""
    lines = [
        f"# finews {report['flow']} run `{report['run_id']}`: {report['status']}",
        "",
        f"Site {report['site']}, categories {', '.join(report['categories'])}, "
        f"mode {report['mode']}, {report['elapsed_s']:.1f} s.",
        "",
        "| count | value |",
        "| --- | ---: |",
        *(f"| {label} | {value} |" for label, value in run_counts(report)),
        "",
        f"Warehouse: `{report['warehouse']}` (catalog `finews.duckdb`; "
        f"`finews sql \"SELECT * FROM failures WHERE run_id = '{report['run_id']}'\"`).",
    ]
    if report["failure_reasons"]:
        lines += ["", "## Failures (first 20)", ""]
        lines += [f"- {reason}" for reason in report["failure_reasons"]]
    return "\n".join(lines)


def publish_report(report: dict[str, Any]) -> None:
    """Every crawl and backfill leaves its report in Prefect, under one key (see README)."""
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=report_markdown(report),
        description=f"{report['flow']} {report['status']}: {report['new_articles']} new, "
        f"{report['failures']} failed",
    )


def start_progress() -> uuid.UUID | None:
    """A progress artifact at 0%, so a long backfill shows how far it got; its id or None."""
    artifact = create_progress_artifact(progress=0.0, description="backfill progress")
    return artifact if isinstance(artifact, uuid.UUID) else getattr(artifact, "id", None)


def publish_progress(artifact_id: uuid.UUID | None, percent: float) -> None:
    """Move a run's progress artifact (none for crawls: nothing to do)."""
    if artifact_id is not None:
        update_progress_artifact(artifact_id=artifact_id, progress=round(percent, 1))
