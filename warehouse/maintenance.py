"""Compaction and retention, done by DuckLake: merge small files, fold deletes into the files,
expire old snapshots, delete the files no snapshot needs.

Merged-away files are not deleted at once: they are scheduled for deletion and removed by a
later compaction once they have been scheduled longer than ``READER_GRACE``, so a query or
transaction that began before the compaction keeps reading the files it started with.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.lake import ALIAS, open_writer, retrying

READER_GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TableFiles:
    """A table's live data files before and after a compaction."""

    table: str
    files_before: int
    files_after: int
    bytes_after: int


@dataclass(frozen=True, slots=True)
class CompactionReport:
    tables: tuple[TableFiles, ...]
    snapshots_expired: int
    files_deleted: int
    elapsed_s: float

    def __getitem__(self, table: str) -> TableFiles:
        for entry in self.tables:
            if entry.table == table:
                return entry
        raise KeyError(table)

    @property
    def files_before(self) -> int:
        return sum(entry.files_before for entry in self.tables)

    @property
    def files_after(self) -> int:
        return sum(entry.files_after for entry in self.tables)


def table_files(session: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Live data files and their bytes, per table."""
    rows = session.execute(
        f"SELECT table_name, file_count, file_size_bytes FROM ducklake_table_info('{ALIAS}')"
    ).fetchall()
    return {name: (int(count or 0), int(size or 0)) for name, count, size in rows}


def cutoff(moment: dt.datetime) -> dt.datetime:
    """``moment`` rounded down to the start of its UTC day (less a microsecond).

    On a SQLite catalog, DuckLake 1.5.5 compares the cutoff with stored times as text
    (``YYYY-MM-DD HH…`` against ``YYYY-MM-DDTHH…``): everything stamped on the cutoff's own
    day counts as older, so files and snapshots went up to a day early. A cutoff just
    before midnight compares the same as text and as time: things go up to a day late, never
    early.
    """
    day = moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(microseconds=1)


def compact(root: Path, *, retention: dt.timedelta) -> CompactionReport:
    """Merge adjacent files and rewrite files with deletes; expire snapshots older than
    ``retention`` (time travel reaches that far back); delete files scheduled for deletion
    more than ``READER_GRACE`` ago, and files no snapshot ever named (a killed writer's) that
    are as old."""
    started = time.monotonic()
    session = open_writer(root)
    try:

        def call(sql: str, *params: object) -> list[tuple[object, ...]]:
            return retrying(lambda: session.execute(sql, list(params)).fetchall())

        before = table_files(session)
        call(f"CALL ducklake_merge_adjacent_files('{ALIAS}')")
        call(f"CALL ducklake_rewrite_data_files('{ALIAS}')")
        call(f"CALL ducklake_merge_adjacent_files('{ALIAS}')")
        now = dt.datetime.now(dt.UTC)
        expired = call(
            f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => ?)", cutoff(now - retention)
        )
        grace = cutoff(now - READER_GRACE)
        deleted = call(f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => ?)", grace)
        # files a killed writer wrote but never committed: in no snapshot, read by no one
        orphans = call(f"CALL ducklake_delete_orphaned_files('{ALIAS}', older_than => ?)", grace)
        after = table_files(session)
    finally:
        session.close()
    tables = tuple(
        TableFiles(name, before.get(name, (0, 0))[0], count, size)
        for name, (count, size) in sorted(after.items())
    )
    return CompactionReport(
        tables=tables,
        snapshots_expired=len(expired),
        files_deleted=len(deleted) + len(orphans),
        elapsed_s=round(time.monotonic() - started, 3),
    )
