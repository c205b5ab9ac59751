"""Compaction: rewrite each crowded partition's many small run files as one sorted file.

Every run lands a few files per day partition, so after weeks a query opens thousands of tiny
files. Compaction merges them (explicit schema, zstd, articles sorted by ``info_code`` so a
lookup skips row groups) and drops rows that are identical in every column.

Merged files are durably in place *before* any source is deleted: a reader may see both (the
``articles`` view keeps one row per identical version), never neither; a crash at any point
leaves at worst sources plus merged file, whose duplicates the next compaction drops. A query
that listed a source just before it is deleted fails with DuckDB's "Cannot open file" IO error
(never with wrong rows) and can simply be retried; to make that rare, a table's sources are
deleted in one burst once all its partitions are merged. Only the files listed when a partition
is started are merged and deleted, so runs may keep landing files meanwhile. One compaction at
a time, guarded by ``<root>/.state/compact.lock``.

Between compactions, :func:`merge_delta` (run at the end of every crawl) merges only the small
files landed since the last compaction, under the same lock, retiring rather than deleting
what it merged for the tables whose views name their files (``warehouse.retired``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.catalog import refresh_catalog
from warehouse.locks import file_lock
from warehouse.retired import purge, retire, retired
from warehouse.schema import TABLES, conform
from warehouse.snapshot import (
    COVERED_TABLES,
    build_snapshot,
    read_manifest,
    remove_old_snapshots,
)
from warehouse.writer import replacing

LOG = logging.getLogger(__name__)

DEFAULT_TABLES = ("articles", "sightings", "fetch_log", "failures", "listing_state")
SOURCE_GLOB = "part-*.parquet"
COMPACTED_PREFIX = "part-compacted-"
MERGED_PREFIX = "part-merged-"  # a delta merge's output: still delta, merged again later
DELTA_MERGE_FILES = 8
DELTA_MERGE_ROWS = 2_000  # rows merged at a time by a delta merge: bounds the crawl's memory
LOCK_FILE = Path(".state") / "compact.lock"
ROW_GROUP_ROWS = 100_000
TARGET_ROWS = 500_000  # rows per compacted file
ROW_INDEX = "__compaction_row"
SORT_KEYS: dict[str, list[tuple[str, str]]] = {
    "articles": [("info_code", "ascending"), ("fetched_at", "ascending"), ("run_id", "ascending")],
    "sightings": [("info_code", "ascending"), ("seen_at", "ascending")],
}


class CompactionBusy(RuntimeError):
    """Another compaction holds the warehouse's compaction lock."""


@dataclass(frozen=True)
class TableCompaction:
    """What compaction did to one table (files and rows of the partitions it rewrote)."""

    table: str
    partitions_compacted: int = 0
    partitions_skipped: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    elapsed_s: float = 0.0

    @property
    def duplicates_dropped(self) -> int:
        return self.rows_before - self.rows_after


@dataclass(frozen=True)
class CompactionReport:
    """Per-table figures of one ``compact`` call."""

    tables: tuple[TableCompaction, ...]
    elapsed_s: float
    snapshot_rows: int | None = None
    snapshot_s: float = 0.0

    def __getitem__(self, table: str) -> TableCompaction:
        for entry in self.tables:
            if entry.table == table:
                return entry
        raise KeyError(table)

    @property
    def partitions_compacted(self) -> int:
        return sum(entry.partitions_compacted for entry in self.tables)

    @property
    def files_before(self) -> int:
        return sum(entry.files_before for entry in self.tables)

    @property
    def files_after(self) -> int:
        return sum(entry.files_after for entry in self.tables)


@dataclass(frozen=True)
class _Source:
    path: Path
    inode: int
    mtime_ns: int
    rows: int


def merge_delta(
    root: Path,
    *,
    tables: Sequence[str] = DEFAULT_TABLES,
    min_files: int | None = None,
) -> CompactionReport:
    """Merge the files landed since the last compaction, per partition, once there are many.

    Between compactions each run adds files: a lookup through the ``articles`` view opens every
    one of them (at 1,000,000 articles with 100 runs' files, ~75-95 ms instead of ~15). In each
    partition holding at least ``min_files`` (default ``DELTA_MERGE_FILES``) small files (under
    ``DELTA_MERGE_ROWS`` rows) that the current snapshot does not reflect (for tables without
    a snapshot: that no compaction wrote), those are merged into ``part-merged-`` files of
    about ``DELTA_MERGE_ROWS`` rows, which stay delta. The snapshot, its manifest and the
    compacted files are left alone, so this costs what the delta costs, not the warehouse, in
    bounded memory: cheap enough to run after every crawl. Same lock and crash rules as
    :func:`compact`; the catalog is refreshed when anything was merged. Raises
    ``CompactionBusy`` when a compaction is running.
    """
    min_files = DELTA_MERGE_FILES if min_files is None else min_files
    if min_files < 2:
        raise ValueError("min_files must be at least 2")
    root = Path(root)
    started = time.perf_counter()
    with _exclusive_lock(root):
        purge(root)
        manifest = read_manifest(root)  # under the lock: no compaction moves it meanwhile
        results = []
        with duckdb.connect() as connection:
            for table in tables:
                covered = frozenset(manifest.covered.get(table, ()))
                pick = functools.partial(_is_delta, root / table, table, covered)
                results.append(
                    _compact_table(
                        root,
                        table,
                        min_files,
                        TARGET_ROWS,
                        connection,
                        select=pick,
                        prefix=MERGED_PREFIX,
                        retire_sources=table in COVERED_TABLES,
                        group_rows=DELTA_MERGE_ROWS,
                    )
                )
        if any(r.partitions_compacted for r in results if r.table in COVERED_TABLES):
            refresh_catalog(root)  # new catalogs name the merged files, not the retired ones
    return CompactionReport(tuple(results), time.perf_counter() - started)


def _is_delta(folder: Path, table: str, covered: frozenset[str], path: Path) -> bool:
    """Whether the last compaction has not gone past this file yet: for tables with a
    snapshot, a file its manifest does not name; for the others, a file no compaction wrote."""
    if table in COVERED_TABLES:
        return str(path.relative_to(folder)) not in covered
    return not path.name.startswith(COMPACTED_PREFIX)


def compact(
    root: Path,
    *,
    tables: Sequence[str] = DEFAULT_TABLES,
    min_files: int = 2,
    target_rows: int = TARGET_ROWS,
    snapshot: bool = True,
) -> CompactionReport:
    """Merge every partition holding at least ``min_files`` data files; see the module doc.

    A partition with more than ``target_rows`` rows becomes several files of about equal size.
    Then (``snapshot``) the current snapshot of ``articles`` is rebuilt and the catalog moved
    to it (see ``warehouse.snapshot``). Raises ``CompactionBusy`` when another compaction is
    running.
    """
    if min_files < 1 or target_rows < 1:
        raise ValueError("min_files and target_rows must be at least 1")
    unknown = [table for table in tables if table not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s): {', '.join(unknown)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no warehouse at {root}")
    started = time.perf_counter()
    snapshot_rows, snapshot_s = None, 0.0
    with _exclusive_lock(root):
        results = []
        with duckdb.connect() as connection:
            for table in tables:
                results.append(_compact_table(root, table, min_files, target_rows, connection))
                if results[-1].partitions_compacted and table in COVERED_TABLES:
                    refresh_catalog(root)  # its views name files: not the deleted ones
        if snapshot:
            snapshot_started = time.perf_counter()
            snapshot_rows = build_snapshot(root).rows
            refresh_catalog(root)  # readers move to the new snapshot before the old one goes
            remove_old_snapshots(root)
            snapshot_s = time.perf_counter() - snapshot_started
        # Sessions opened before a compaction reopen anyway (it deletes what it merged):
        # delta-merged files waiting out their grace period go now too.
        purge(root, grace_s=0)
    return CompactionReport(
        tuple(results), time.perf_counter() - started, snapshot_rows, snapshot_s
    )


def _exclusive_lock(root: Path) -> AbstractContextManager[None]:
    path = root / LOCK_FILE
    return file_lock(
        path, busy=lambda: CompactionBusy(f"another compaction is running on {root} ({path})")
    )


def _compact_table(
    root: Path,
    table: str,
    min_files: int,
    target_rows: int,
    connection: duckdb.DuckDBPyConnection,
    *,
    select: Callable[[Path], bool] | None = None,
    prefix: str = COMPACTED_PREFIX,
    retire_sources: bool = False,
    group_rows: int | None = None,
) -> TableCompaction:
    """Merge each partition's sources (the files ``select`` accepts) into new files.

    ``retire_sources``: retire the merged sources (see ``warehouse.retired``) instead of
    deleting them: for the tables whose views name their files. Retired files are never
    sources again: the merged file holds their rows. ``group_rows``: merge only files smaller
    than that, in groups of about that many rows (one file each), to bound the memory used,
    in any partition holding ``min_files`` of them.
    """
    gone = retired(root)
    started = time.perf_counter()
    merged_sources: list[list[_Source]] = []
    compacted = skipped = files_before = files_after = rows_before = rows_after = 0

    def wanted(path: Path) -> bool:  # before any file is opened
        return str(path.relative_to(root)) not in gone and (select is None or select(path))

    for folder in _partition_folders(root / table):
        sources = [
            source
            for source in _list_sources(folder, wanted)
            # grouped merges take small files only: a file of a group's size stays as it is
            if group_rows is None or source.rows < group_rows
        ]
        if group_rows is not None:
            if len(sources) < min_files:
                continue
        elif not _needs_compaction(sources, min_files, target_rows):
            continue
        merged_any = False
        for group in _groups(sources, group_rows):
            try:
                merged = _merge(table, group, connection)
            except (FileNotFoundError, ValueError, pa.ArrowException) as exc:
                LOG.warning("compaction skipped %s: %s", folder, exc)
                skipped += 1
                continue
            written = _write_parts(merged, folder, target_rows, prefix)
            merged_sources.append(group)
            merged_any = True
            files_before += len(group)
            files_after += len(written)
            rows_before += sum(source.rows for source in group)
            rows_after += merged.num_rows
            del merged
        compacted += merged_any
    done = [source for sources in merged_sources for source in sources]
    if retire_sources:
        retire(root, [source.path for source in done])
    else:
        _delete_sources(done)
    return TableCompaction(
        table=table,
        partitions_compacted=compacted,
        partitions_skipped=skipped,
        files_before=files_before,
        files_after=files_after,
        rows_before=rows_before,
        rows_after=rows_after,
        elapsed_s=time.perf_counter() - started,
    )


def _groups(sources: list[_Source], rows: int | None) -> list[list[_Source]]:
    """Consecutive sources of about ``rows`` rows each, at least two files per group (all of
    them as one when None); a last single file joins the group before: none is merged alone."""
    if rows is None:
        return [sources]
    groups: list[list[_Source]] = [[]]
    count = 0
    for source in sources:  # each is under ``rows``: a group of two or more stays under 2×
        if len(groups[-1]) > 1 and count + source.rows > rows:
            groups.append([])
            count = 0
        groups[-1].append(source)
        count += source.rows
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()
        groups[-1] += last
    return [group for group in groups if len(group) > 1]


def _partition_folders(folder: Path) -> Iterator[Path]:
    """The table folder and every non-hidden folder below it, in a stable order."""
    if not folder.is_dir():
        return
    for current, subfolders, _ in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith((".", "_")))
        yield Path(current)


def _list_sources(folder: Path, select: Callable[[Path], bool] | None = None) -> list[_Source]:
    """Data files of one partition now; files landing later are left for the next compaction."""
    sources = []
    for path in sorted(folder.glob(SOURCE_GLOB)):
        if select is not None and not select(path):
            continue
        try:
            stat = path.stat()
            rows = pq.read_metadata(path).num_rows
        except (FileNotFoundError, pa.ArrowException) as exc:
            LOG.warning("compaction ignores %s: %s", path, exc)
            continue
        sources.append(_Source(path, stat.st_ino, stat.st_mtime_ns, rows))
    return sources


def _needs_compaction(sources: list[_Source], min_files: int, target_rows: int) -> bool:
    if len(sources) < min_files:
        return False
    fewest = max(1, math.ceil(sum(source.rows for source in sources) / target_rows))
    already = all(source.path.name.startswith(COMPACTED_PREFIX) for source in sources)
    return not (already and len(sources) <= fewest)


def _merge(table: str, sources: list[_Source], connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """All rows of ``sources`` in the table's schema, exact duplicates dropped, sorted."""
    schema = TABLES[table]
    parts = [conform(pq.ParquetFile(source.path).read(), schema) for source in sources]
    merged = pa.concat_tables(parts, promote_options="default")
    merged = _drop_exact_duplicates(merged, connection)
    keys = SORT_KEYS.get(table)
    return merged.sort_by(keys) if keys else merged


def _drop_exact_duplicates(data: pa.Table, connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Keep the first of rows equal in every column (lists included, nulls equal to nulls).

    Rows are first grouped by a hash of all their columns (one number per row, cheap on
    memory); only rows sharing a hash (exact repeats are rare) are compared column by column.
    """
    if data.num_rows < 2:
        return data
    indexed = data.append_column(ROW_INDEX, pa.array(range(data.num_rows), pa.int64()))
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in data.column_names)
    connection.register("merged", indexed)
    try:
        shared = connection.sql(
            f"SELECT {ROW_INDEX} FROM merged "
            f"QUALIFY count(*) OVER (PARTITION BY hash({columns})) > 1"
        ).to_arrow_table()
        if shared.num_rows == 0:
            return data
        connection.register("shared", shared)
        repeated = connection.sql(
            f"SELECT {ROW_INDEX} AS repeat FROM merged "
            f"WHERE {ROW_INDEX} IN (SELECT {ROW_INDEX} FROM shared) "
            f"QUALIFY row_number() OVER (PARTITION BY {columns} ORDER BY {ROW_INDEX}) > 1"
        ).to_arrow_table()
        connection.unregister("shared")
    finally:
        connection.unregister("merged")
    if repeated.num_rows == 0:
        return data
    drop = pc.is_in(indexed.column(ROW_INDEX), value_set=repeated.column("repeat"))
    return data.filter(pc.invert(drop))


def _write_parts(
    data: pa.Table, folder: Path, target_rows: int, prefix: str = COMPACTED_PREFIX
) -> list[Path]:
    if data.num_rows == 0:
        return []
    count = math.ceil(data.num_rows / target_rows)
    size = math.ceil(data.num_rows / count)
    written = []
    for offset in range(0, data.num_rows, size):
        target = folder / f"{prefix}{uuid.uuid4().hex}.parquet"
        _write_merged(data.slice(offset, size), target)
        written.append(target)
    return written


def _write_merged(data: pa.Table, target: Path) -> None:
    """A merged file, durably in place (with row groups) before its sources go."""
    with replacing(target) as temp:
        pq.write_table(data, temp, compression="zstd", row_group_size=ROW_GROUP_ROWS)


def _delete_sources(sources: list[_Source]) -> None:
    """Delete merged sources, unless a file was replaced since it was read.

    No directory fsync: a deletion lost in a crash only brings back rows the merged file holds.
    """
    for source in sources:
        try:
            stat = source.path.stat()
        except FileNotFoundError:
            continue
        if (stat.st_ino, stat.st_mtime_ns) != (source.inode, source.mtime_ns):
            LOG.warning("compaction keeps %s: it changed while being merged", source.path)
            continue
        source.path.unlink(missing_ok=True)
