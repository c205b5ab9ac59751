"""The current snapshot: one materialised row per article, so queries skip most of the dedupe.

The ``articles`` view answers "the newest version of every article, with every category it was
ever listed in". Computed over every landed row at query time, that window costs more than the
scan itself. Compaction therefore also writes ``articles_current/``: the view's answer as of
then, sorted by ``info_code`` in small row groups (a lookup reads one), plus a manifest naming
the data files whose rows it reflects. The view then reads the snapshot as is and redoes the
dedupe only for the articles that files *not* named in the manifest mention (the delta: runs
landed since, or a compaction that crashed half way), so its answer is exactly the full
dedupe's, whatever landed or crashed in between.

Why it is safe: the manifest lists the data files present *before* the snapshot is computed;
the computation reads those and possibly more (files a concurrent run lands meanwhile), so
every listed file is reflected, and an unlisted one is re-deduplicated by the view. Snapshot
files are new names each time; the manifest is replaced atomically, the catalog is rebuilt
from it, and only then are the old snapshot files deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.retired import retired
from warehouse.schema import TABLES, conform
from warehouse.writer import ensure_layout, fsync_folder, replacing

SNAPSHOT_DIR = "articles_current"
MANIFEST = "_manifest.json"
SNAPSHOT_PREFIX = "snapshot-"
ORPHANS_PREFIX = "orphan-sightings-"
ROW_GROUP_ROWS = 10_000  # ~15 MB of bodies: a lookup reads one such group
FILE_ROWS = 500_000
BUCKET_ROWS = 100_000  # rows deduplicated and sorted at a time while building
COVERED_TABLES = ("articles", "sightings")


@dataclass(frozen=True)
class Manifest:
    """Which snapshot files are current, and which data files (relative paths) they reflect."""

    generation: int = 0
    files: tuple[str, ...] = ()
    covered: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: int = 0
    orphans: str | None = None  # sightings of articles not landed then (see build_snapshot)

    def snapshot_paths(self, root: Path) -> list[Path]:
        return [root / SNAPSHOT_DIR / name for name in self.files]

    def orphan_paths(self, root: Path) -> list[Path]:
        return [root / SNAPSHOT_DIR / self.orphans] if self.orphans else []


def read_manifest(root: Path) -> Manifest:
    """The current manifest; an empty one (nothing materialised) when there is none yet."""
    path = root / SNAPSHOT_DIR / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Manifest()
    return Manifest(
        generation=int(data["generation"]),
        files=tuple(data["files"]),
        covered={table: tuple(names) for table, names in data["covered"].items()},
        rows=int(data.get("rows", 0)),
        orphans=data.get("orphans"),
    )


def data_files(root: Path, table: str) -> list[str]:
    """A table's landed and compacted data files now, relative to its folder (schema and
    retired files excluded)."""
    folder = root / table
    gone = retired(root)  # replaced by a delta merge's file, kept for older sessions only
    found = []
    for current, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith((".", "_")))
        for name in sorted(names):
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                relative = (Path(current) / name).relative_to(folder)
                if f"{table}/{relative}" not in gone:
                    found.append(str(relative))
    return found


def build_snapshot(root: Path, *, memory_limit: str = "1GB") -> Manifest:
    """Materialise the ``articles`` view into new snapshot files and switch the manifest.

    The caller holds the compaction lock (one snapshot build at a time) and rebuilds the
    catalog afterwards; :func:`remove_old_snapshots` then deletes the superseded files.
    """
    from warehouse.catalog import views_sql  # the view is the one definition of "current"

    root = root.resolve()
    ensure_layout(root)
    previous = read_manifest(root)
    covered = {table: tuple(data_files(root, table)) for table in COVERED_TABLES}
    folder = root / SNAPSHOT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    generation = previous.generation + 1
    spill = root / ".state" / "spill"  # DuckDB creates it if the sort has to spill
    files = _RollingWriter(folder, f"{SNAPSHOT_PREFIX}{generation:06d}-")
    with duckdb.connect(config={"memory_limit": memory_limit}) as connection, files:
        connection.execute("SET temp_directory = ?", [str(spill)])
        connection.execute(views_sql(root))
        # Key ranges of about BUCKET_ROWS rows each, built in order: the dedupe and the sort
        # then hold one range in memory, not the warehouse.
        for low, high in _key_ranges(connection, root):
            relation = connection.sql(
                "SELECT * FROM articles WHERE info_code >= $low AND info_code < $high "
                "ORDER BY info_code",
                params={"low": low, "high": high},
            )
            with relation.to_arrow_reader(batch_size=ROW_GROUP_ROWS) as reader:
                for batch in reader:
                    files.write(conform(pa.Table.from_batches([batch]), TABLES["articles"]))
        orphans = _write_orphans(connection, folder, generation)
    fsync_folder(folder)  # the new files' names are durable before the manifest names them
    manifest = Manifest(generation, tuple(files.names), covered, files.rows, orphans)
    _write_manifest(folder, manifest)
    return manifest


def _write_orphans(
    connection: duckdb.DuckDBPyConnection, folder: Path, generation: int
) -> str | None:
    """Sightings of articles that had not landed (their fetch failed, the run was cut short):
    the manifest marks their files as reflected, but no snapshot row holds their categories,
    so they are kept apart, for the view to merge into the article once it lands."""
    table = connection.sql(
        "SELECT DISTINCT info_code, category FROM sightings "
        "WHERE category IS NOT NULL AND info_code NOT IN (SELECT info_code FROM articles) "
        "ORDER BY ALL"
    ).to_arrow_table()
    if not table.num_rows:
        return None
    name = f"{ORPHANS_PREFIX}{generation:06d}-{uuid.uuid4().hex[:12]}.parquet"
    with replacing(folder / name, sync_folder=False) as temp:
        pq.write_table(table, temp, compression="zstd")
    return name


def _key_ranges(connection: duckdb.DuckDBPyConnection, root: Path) -> list[tuple[str, str]]:
    """[low, high) ranges of info_code, together covering every code, ~BUCKET_ROWS rows each."""
    pattern = str(root / "articles" / "**" / "*.parquet").replace("'", "''")
    ((rows, highest),) = connection.execute(
        f"SELECT count(*), max(info_code) FROM read_parquet('{pattern}', union_by_name = true)"
    ).fetchall()
    if not rows:
        return []
    buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    cuts: list[str] = []
    if buckets > 1:
        fractions = [index / buckets for index in range(1, buckets)]
        ((quantiles,),) = connection.execute(
            f"SELECT quantile_disc(info_code, {fractions}) "
            f"FROM read_parquet('{pattern}', union_by_name = true)"
        ).fetchall()
        cuts = sorted(set(quantiles))
    bounds = ["", *cuts, highest + "\U0010ffff"]
    return list(itertools.pairwise(bounds))


def remove_old_snapshots(root: Path) -> int:
    """Delete snapshot files the manifest no longer names (after the catalog moved on)."""
    manifest = read_manifest(root)
    current = {*manifest.files, manifest.orphans}
    removed = 0
    for prefix in (SNAPSHOT_PREFIX, ORPHANS_PREFIX):
        for path in (root / SNAPSHOT_DIR).glob(f"{prefix}*.parquet"):
            if path.name not in current:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


class _RollingWriter:
    """Writes sorted batches into files of at most FILE_ROWS rows, each durable once closed
    (``writer.replacing``; their names are made durable together, before the manifest's)."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix
        self.names: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file = contextlib.ExitStack()
        self._in_file = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None or self._in_file >= FILE_ROWS:
            self._close()
            name = f"{self.prefix}{uuid.uuid4().hex[:12]}.parquet"
            temp = self._file.enter_context(replacing(self.folder / name, sync_folder=False))
            self._writer = pq.ParquetWriter(temp, TABLES["articles"], compression="zstd")
            self.names.append(name)
            self._in_file = 0
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._in_file += table.num_rows
        self.rows += table.num_rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._file.close()  # fsynced and renamed into place

    def __enter__(self) -> _RollingWriter:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if kind is None:
            self._close()
            return
        if self._writer is not None:
            self._writer.close()
        self._file.__exit__(type(error), error, None)  # the temporary file goes, nothing lands


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    data = {
        "generation": manifest.generation,
        "files": list(manifest.files),
        "covered": {table: list(names) for table, names in manifest.covered.items()},
        "rows": manifest.rows,
        "orphans": manifest.orphans,
    }
    with replacing(folder / MANIFEST) as temp:
        temp.write_text(json.dumps(data, indent=1), encoding="utf-8")
