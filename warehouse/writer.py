"""Landing rows as Parquet: explicit schema, zstd, one file per partition and batch.

A file is written under a hidden temporary name in its final directory, flushed to disk and
renamed into place, so a reader (or a crash) never sees a partial ``*.parquet`` file.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.schema import TABLES

TEMP_SUFFIX = ".tmp"


def ensure_layout(root: Path) -> None:
    """Create the table folders and each table's zero-row schema file (so views always resolve)."""
    for table, schema in TABLES.items():
        folder = root / table
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / "_schema.parquet"
        if not marker.exists():
            with contextlib.suppress(TargetExists):  # a concurrent run created it first
                _atomic_write(schema.empty_table(), marker)


def is_warehouse(root: Path) -> bool:
    """Whether ``root`` holds a warehouse (something has landed or laid out its tables)."""
    return (root / "articles").is_dir()


class TargetExists(FileExistsError):
    """A data file of that name is already in place: landed files are never overwritten."""


@contextlib.contextmanager
def replacing(target: Path, *, overwrite: bool = True, sync_folder: bool = True) -> Iterator[Path]:
    """A hidden temporary path next to ``target``; once the body has written it, it is fsynced
    and moved into place, so readers and crashes see the old file or the new one, never half.

    ``overwrite=False`` links instead of renaming: an existing ``target`` is never replaced
    (``TargetExists``). ``sync_folder`` also fsyncs the folder, so the new name itself
    survives a power loss. The temporary file is removed whatever happens.
    """
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)
            except FileExistsError:
                raise TargetExists(f"{target} already exists; refusing to overwrite it") from None
        if sync_folder:
            fsync_folder(target.parent)
    finally:
        temp.unlink(missing_ok=True)


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` (a rename, a new link, a deletion) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(table: pa.Table, target: Path) -> None:
    """A landed file appears whole and is never clobbered. No folder fsync: a file lost in a
    power cut is fetched again by the next run, and landing stays cheap."""
    with replacing(target, overwrite=False, sync_folder=False) as temp:
        pq.write_table(table, temp, compression="zstd")


def write_rows(
    root: Path,
    table: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    partition: str | None,
    name: str,
) -> list[Path]:
    """Write rows of ``table``, split by the hive partition column ``partition`` when given.

    ``name`` makes the file name unique per run and batch; the partition value comes from
    each row's ``partition`` key, which is not stored in the file itself.
    """
    schema = TABLES[table]
    groups: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row[partition]) if partition else None].append(row)
    written: list[Path] = []
    for value, group in groups.items():
        folder = root / table / f"{partition}={value}" if partition else root / table
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"part-{name}.parquet"
        arrow = pa.Table.from_pylist([dict(row) for row in group], schema=schema)
        _atomic_write(arrow, target)
        written.append(target)
    return written


def remove_stale_temp_files(root: Path, *, older_than_s: float = 3600.0) -> int:
    """Delete temporary files a crashed writer left behind; returns how many.

    Only old ones: a concurrent run may be writing a young temporary file right now.
    """
    removed = 0
    cutoff = time.time() - older_than_s
    leftovers = [*root.rglob(f".*{TEMP_SUFFIX}"), *root.rglob(f".*{TEMP_SUFFIX}.wal")]
    for path in leftovers:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
