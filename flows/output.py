"""Printing query results and run summaries for people and for scripts."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Sequence
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


def format_summary(report: dict[str, Any]) -> str:
    lines = [
        f"run {report['run_id']} ({report['flow']}): {report['status']}",
        f"  site                {report['site']}",
        f"  categories          {', '.join(report['categories'])} "
        f"({report['categories_listed']} pages listed)",
        f"  references seen     {report['refs_seen']}",
        f"  new articles        {report['new_articles']}",
        f"  new versions        {report['new_versions']}",
        f"  duplicates skipped  {report['duplicates_skipped']}",
        f"  pages fetched       {report['pages_fetched']}",
        f"  failures            {report['failures']}",
        f"  elapsed             {report['elapsed_s']:.1f} s",
        f"  warehouse           {report['warehouse']}",
    ]
    for reason in report.get("failure_reasons", [])[:10]:
        lines.append(f"    failed: {reason}")
    return "\n".join(lines)
