"""Maintenance flow: compaction of the small Parquet files frequent runs leave behind."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.crawl import flow_settings
from flows.output import format_compaction
from warehouse.writer import remove_stale_temp_files


@flow(name="compact", log_prints=False)
def compact(warehouse: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Merge each partition's small files into one; readers see every article once throughout."""
    from warehouse.compaction import compact as compact_warehouse

    settings = flow_settings(config_file, warehouse=warehouse)
    report = compact_warehouse(settings.warehouse)  # the catalog is rebuilt as it ends
    remove_stale_temp_files(settings.warehouse)
    data = asdict(report)
    summary = format_compaction(data, settings.warehouse)
    get_run_logger().info("%s", summary)
    create_markdown_artifact(
        key="finews-compaction", markdown=f"# finews compaction\n\n```\n{summary}\n```\n"
    )
    return data
