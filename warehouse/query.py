"""The read-only query path analysts use (``finews sql``): the lake attached READ_ONLY, the
session confined to the lake's files and locked, one reading statement at a time."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb

from warehouse.lake import ALIAS, DATA_FOLDER, LakeError, catalog_path, open_reader

READING_STATEMENTS = frozenset({"SELECT"})
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN(\s+ANALY[SZ]E)?\b", re.IGNORECASE)
# Table functions are callable from a SELECT. DuckLake's (``ducklake_x('finews')``, or
# ``finews.x()`` and plain ``x()`` once the lake is the default database) are not all stopped
# by a READ_ONLY attach: some write or delete data files before their commit fails. Only these
# read the lake; any other DuckLake function is refused, as are the SQLite extension's (they
# open any SQLite file on the machine, past allowed_directories) and the functions that run SQL
# given as text.
_LAKE_READERS = frozenset(
    {
        "snapshots",
        "current_snapshot",
        "last_committed_snapshot",
        "table_info",
        "list_files",
        "table_changes",
        "table_insertions",
        "table_deletions",
        "options",
        "settings",
    }
)
_LAKE_WRITERS = frozenset(
    {
        "add_data_files",
        "checkpoint",
        "cleanup_old_files",
        "commit",
        "delete_orphaned_files",
        "expire_snapshots",
        "flush_inlined_data",
        "force_checkpoint",
        "merge_adjacent_files",
        "rewrite_data_files",
        "set_commit_message",
        "set_option",
    }
)
_RUNS_SQL_TEXT = frozenset({"query", "query_table", "json_execute_serialized_sql"})
_FOREIGN_FILES = ("sqlite_",)


class QueryRefused(ValueError):
    """A statement that would change or leave the warehouse, or that cannot run."""


def snapshot_of_run(root: Path, run_id: str) -> int:
    """The snapshot a run's data ended at (``runs.snapshot_id``)."""
    with open_reader(root) as session:
        row = session.execute(
            f"SELECT snapshot_id FROM {ALIAS}.runs WHERE run_id = ?", [run_id]
        ).fetchone()
    if row is None or row[0] is None:
        raise QueryRefused(f"no run {run_id!r} in the warehouse: see SELECT run_id FROM runs")
    return int(row[0])


def connect_read_only(root: Path, *, as_of: str | None = None) -> duckdb.DuckDBPyConnection:
    """A session on the lake (as of the end of run ``as_of``), reading nothing but its files.

    A folder that holds no warehouse is refused, not laid out.
    """
    root = root.resolve()
    try:
        snapshot = snapshot_of_run(root, as_of) if as_of else None
        session = open_reader(root, snapshot=snapshot)
    except LakeError as exc:
        raise QueryRefused(str(exc)) from None
    allowed = [str(root / DATA_FOLDER) + os.sep, str(catalog_path(root))]
    session.execute("SET TimeZone = 'Asia/Shanghai'")
    # DuckDB allows its spill folder (``.tmp`` under the working directory) too: none.
    session.execute("SET temp_directory = ''")
    session.execute("SET allowed_directories = ?", [allowed])
    session.execute("SET enable_external_access = false")
    session.execute("SET lock_configuration = true")
    return session


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
    for name in _table_functions(statements[0].query):
        if not _may_call(name):
            raise QueryRefused(f"{name}() cannot be called here: it writes or reads past the lake")


def _may_call(name: str) -> bool:
    if name.startswith("ducklake_"):
        return name.removeprefix("ducklake_") in _LAKE_READERS
    return not (name in _LAKE_WRITERS or name in _RUNS_SQL_TEXT or name.startswith(_FOREIGN_FILES))


def _table_functions(sql: str) -> set[str]:
    """The (lower-case, unqualified) names of the table functions a SELECT calls, anywhere."""
    with duckdb.connect() as parser:
        (tree,) = parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone() or ("{}",)
    parsed = json.loads(tree)
    if parsed.get("error", True):
        raise QueryRefused("cannot check the query: give one SELECT")
    names: set[str] = set()
    pending: list[Any] = [parsed]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION":
                names.add(str(node.get("function", {}).get("function_name", "")).lower())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names


def run_query(
    root: Path, sql: str, *, as_of: str | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement against the lake; returns (column names, rows)."""
    check_read_only(sql)
    try:
        with connect_read_only(root, as_of=as_of) as session:
            relation = session.execute(sql)
            names = [column[0] for column in relation.description or []]
            return names, relation.fetchall()
    except duckdb.Error as exc:
        raise QueryRefused(_first_line(exc)) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
