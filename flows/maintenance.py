"""Maintenance flow: DuckLake's compaction and retention (see ``warehouse.maintenance``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.crawl import flow_settings
from flows.output import format_compaction


@flow(name="compact", log_prints=False)
def compact(warehouse: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Merge small files, expire snapshots older than ``retention``, delete unused files;
    sessions opened before it read on (each query sees one snapshot)."""
    from warehouse.maintenance import compact as compact_lake

    settings = flow_settings(config_file, warehouse=warehouse)
    report = compact_lake(settings.warehouse, retention=dt.timedelta(days=settings.retention))
    data = asdict(report)
    summary = format_compaction(data, settings.warehouse)
    get_run_logger().info("%s", summary)
    create_markdown_artifact(
        key="finews-compaction", markdown=f"# finews compaction\n\n```\n{summary}\n```\n"
    )
    return data
