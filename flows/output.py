"""Printing query results and run summaries for people and for scripts."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def format_rows(names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Render a result as ``table`` (for people), ``csv`` or ``json`` (one object per row)."""
    if fmt == "json":
        return json.dumps(
            [dict(zip(names, map(_plain, row), strict=True)) for row in rows],
            ensure_ascii=False,
            indent=1,
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(
                json.dumps(_plain(v), ensure_ascii=False)
                if isinstance(v, list | dict)
                else _plain(v)
                for v in row
            )
        return buffer.getvalue().rstrip("\n")
    table = Table(show_lines=False, header_style="bold")
    for name in names:
        table.add_column(name, overflow="fold", max_width=60)
    for row in rows:
        table.add_row(*("" if v is None else str(_plain(v)) for v in row))
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(table)
    console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return console.export_text().rstrip("\n")


# The counts of a run, in the order every report shows them: (key of the run report, label,
# shown always). The others only mean something in some runs (a --since/--until backfill, a
# re-extraction) and are shown when not zero.
COUNTS: tuple[tuple[str, str, bool], ...] = (
    ("categories_listed", "category pages listed", True),
    ("pages_fetched", "pages fetched", True),
    ("not_modified", "304 Not Modified", True),
    ("refs_seen", "references seen", True),
    ("new_articles", "new articles", True),
    ("new_versions", "new versions", True),
    ("unchanged", "unchanged (re-extracted)", False),
    ("duplicates_skipped", "duplicates skipped", True),
    ("out_of_range", "outside --since/--until", False),
    ("retried", "retried from the queue", True),
    ("failures", "failures", True),
)


def run_counts(report: dict[str, Any]) -> list[tuple[str, int]]:
    """(label, value) of the counts a run report shows: one list for the terminal and Prefect."""
    return [(label, report[key]) for key, label, always in COUNTS if always or report.get(key)]


def format_summary(report: dict[str, Any]) -> str:
    """A run's report as the command line prints it when the run ends (failures: first 10)."""
    lines = [
        f"run {report['run_id']} ({report['flow']}): {report['status']}",
        f"  {'site':<26}{report['site']}",
        f"  {'categories':<26}{', '.join(report['categories'])}",
        *(f"  {label:<26}{value}" for label, value in run_counts(report)),
        f"  {'elapsed':<26}{report['elapsed_s']:.1f} s",
        f"  {'warehouse':<26}{report['warehouse']}",
    ]
    for reason in report.get("failure_reasons", [])[:10]:
        lines.append(f"    failed: {reason}")
    return "\n".join(lines)


def format_compaction(report: dict[str, Any], warehouse: Path | str) -> str:
    """A compaction's report (``warehouse.maintenance.CompactionReport`` as a dict), per table."""
    lines = [
        f"compacted {warehouse} in {report['elapsed_s']:.1f} s: "
        f"{report['snapshots_expired']} snapshot(s) expired, "
        f"{report['files_deleted']} unused file(s) deleted"
    ]
    for table in report["tables"]:
        lines.append(
            f"  {table['table']:<17}{table['files_before']} → {table['files_after']} data files"
            f" ({table['bytes_after'] / 1e6:.1f} MB)"
        )
    return "\n".join(lines)
