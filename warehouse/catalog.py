"""The DuckDB catalog (views only) and the read-only query path analysts use.

The catalog is rebuilt into a temporary file and renamed over ``finews.duckdb`` (after every
run and compaction), so a reader holding the old file is never blocked and never sees a
half-built catalog. ``finews sql`` builds the same views in memory per query instead, so it
always sees the files as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from warehouse.locks import file_lock
from warehouse.snapshot import Manifest, data_files, read_manifest
from warehouse.writer import ensure_layout, is_warehouse

CATALOG_NAME = "finews.duckdb"
CATALOG_LOCK = Path(".state") / "catalog.lock"
READING_STATEMENTS = frozenset({"SELECT"})
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)
_VANISHED_RETRIES = 3
T = TypeVar("T")


class QueryRefused(ValueError):
    """A statement that would change or leave the warehouse, or that cannot run."""


def views_sql(root: Path) -> str:
    """The catalog's SQL for ``root``: absolute paths, and the data files as they are now.

    ``articles`` names its files (the snapshot, and the delta it does not reflect) rather than
    globbing them: with no delta it is the snapshot itself, with no dedupe at query time.
    ``sightings`` names its files too, leaving out those a delta merge retired.
    """
    root = root.resolve()
    manifest = read_manifest(root)
    template = files("warehouse").joinpath("views.sql").read_text(encoding="utf-8")
    sightings = [root / "sightings" / "_schema.parquet"]
    sightings += [root / "sightings" / name for name in data_files(root, "sightings")]
    values = {
        "root": _sql_text(str(root))[1:-1],
        "articles_view": _articles_view(root, manifest),
        "sightings_files": sql_list(sightings),
    }
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], template)


def _articles_view(root: Path, manifest: Manifest) -> str:
    def schema(table: str) -> Path:
        return root / table / "_schema.parquet"

    snapshot_paths = manifest.snapshot_paths(root)
    delta = {}
    for table in ("articles", "sightings"):
        covered = set(manifest.covered.get(table, ()))
        delta[table] = [
            root / table / name for name in data_files(root, table) if name not in covered
        ]
    if not delta["articles"] and not delta["sightings"]:
        return (
            "-- One row per info_code (the current snapshot; see articles_view.sql).\n"
            "CREATE OR REPLACE VIEW articles AS\n"
            f"SELECT * FROM read_parquet({sql_list([schema('articles'), *snapshot_paths])}, "
            "union_by_name = true, "
            "hive_partitioning = false);"
        )
    template = files("warehouse").joinpath("articles_view.sql").read_text(encoding="utf-8")
    values = {
        "candidate_files": sql_list([schema("articles"), *snapshot_paths, *delta["articles"]]),
        "delta_sightings": sql_list(
            [schema("sightings"), *manifest.orphan_paths(root), *delta["sightings"]]
        ),
    }
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], template)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(paths: list[Path]) -> str:
    """A DuckDB list literal of paths, each quoted."""
    return "[" + ", ".join(_sql_text(str(path)) for path in paths) + "]"


def refresh_catalog(root: Path) -> Path:
    """(Re)build ``<root>/finews.duckdb`` with absolute paths, so it works from any directory.

    Rebuilds take turns (``.state/catalog.lock``, held for tens of milliseconds): a rebuild
    that listed the files before a compaction deleted some is installed before the
    compaction's own rebuild, never after it. A file deleted while it is being listed makes
    the rebuild list again.
    """
    root = root.resolve()
    ensure_layout(root)
    with _catalog_lock(root):
        return retrying_vanished(lambda: _build_catalog(root))


def _build_catalog(root: Path) -> Path:
    target = root / CATALOG_NAME
    temp = root / f".{CATALOG_NAME}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with duckdb.connect(str(temp)) as connection:
            connection.execute(views_sql(root))
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
        Path(f"{temp}.wal").unlink(missing_ok=True)
    return target


def _catalog_lock(root: Path) -> AbstractContextManager[None]:
    return file_lock(root / CATALOG_LOCK)


def retrying_vanished(action: Callable[[], T]) -> T:
    """``action()``, run again when a file it named was deleted meanwhile by a compaction or a
    delta merge: the merged file holds the same rows, so listing again is enough."""
    for attempt in range(_VANISHED_RETRIES + 1):
        try:
            return action()
        except duckdb.IOException as exc:
            if not _vanished(exc) or attempt == _VANISHED_RETRIES:
                raise
    raise AssertionError("unreachable")


def connect_read_only(root: Path) -> duckdb.DuckDBPyConnection:
    """The catalog's views over the files as they are now, confined to the warehouse, locked.

    Built in memory for each connection (tens of milliseconds), so ``finews sql`` sees every
    file landed so far even mid-run; nothing is written (bar the empty schema file of a table
    newer than the data), and ``check_read_only`` admits only reading statements. A folder that
    holds no warehouse is refused, not laid out.
    """
    root = root.resolve()
    if not is_warehouse(root):
        raise QueryRefused(f"no warehouse at {root}: check --warehouse (a crawl creates one)")
    with contextlib.suppress(OSError):  # schema files missing (a table newer than the data)
        ensure_layout(root)
    connection = duckdb.connect(
        config={
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        },
    )
    connection.execute(views_sql(root))
    connection.execute("SET TimeZone = 'Asia/Shanghai'")
    connection.execute("SET parquet_metadata_cache = true")
    connection.execute("SET allowed_directories = ?", [[str(root) + os.sep]])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def check_read_only(sql: str) -> None:
    """Only reading statements pass: one SELECT (or EXPLAIN of one)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"cannot parse the query: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise QueryRefused("give exactly one statement")
    kind = statements[0].type.name
    if kind == "EXPLAIN":
        # EXPLAIN ANALYZE runs the statement it explains: that one must be a SELECT too.
        inner = _EXPLAIN_PREFIX.sub("", statements[0].query, count=1)
        if inner == statements[0].query:
            raise QueryRefused("cannot read the statement behind EXPLAIN")
        check_read_only(inner)
        return
    if kind not in READING_STATEMENTS:
        raise QueryRefused(f"only reading statements are allowed (this is {kind})")


def run_query(root: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement against the catalog; returns (column names, rows)."""
    check_read_only(sql)

    def attempt() -> tuple[list[str], list[tuple[Any, ...]]]:
        with connect_read_only(root) as connection:
            relation = connection.execute(sql)
            names = [column[0] for column in relation.description or []]
            return names, relation.fetchall()

    try:
        return retrying_vanished(attempt)
    except duckdb.Error as exc:
        raise QueryRefused(_first_line(exc)) from None


def _vanished(exc: Exception) -> bool:
    """A file the views named was deleted by a compaction meanwhile: run the query again."""
    return any(text in str(exc) for text in ("No such file", "No files found"))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
