"""Maintenance flow: compaction of the small Parquet files frequent runs leave behind."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.settings import load_settings
from tasks.steps import refresh_catalog_task
from warehouse.writer import remove_stale_temp_files


@flow(name="compact", log_prints=False)
def compact(warehouse: str | None = None, config_file: str | None = None) -> dict[str, Any]:
    """Merge each partition's small files into one; readers see every article once throughout."""
    from warehouse.compaction import compact as compact_warehouse

    settings = load_settings(Path(config_file) if config_file else None, warehouse=warehouse)
    report = compact_warehouse(settings.warehouse)
    remove_stale_temp_files(settings.warehouse)
    refresh_catalog_task(settings.warehouse)
    data = asdict(report)
    get_run_logger().info("compaction: %s", data)
    create_markdown_artifact(
        key="finews-compaction",
        markdown=f"# finews compaction\n\n```\n{data}\n```\n\nWarehouse `{settings.warehouse}`",
    )
    return data
