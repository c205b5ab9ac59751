"""The warehouse is a DuckLake: a SQLite catalog (``<root>/catalog.sqlite``) and Parquet data
files (``<root>/data/``). This module attaches it, creates it once, and commits to it.

DuckLake gives the table format (atomic multi-table commits, snapshots, time travel,
compaction, retention); finews only says where the lake is and retries commits that lost a
race with another writer. With a SQLite catalog, two write transactions that overlap conflict
("database is locked" at commit): one of them runs again from the start, so writers are
serialised and a transaction's reads are never stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from warehouse.schema import ddl_statements

LOG = logging.getLogger(__name__)

ALIAS = "finews"
CATALOG_FILE = "catalog.sqlite"
DATA_FOLDER = "data"
SETUP_LOCK = ".catalog-setup.lock"
EXTENSIONS = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
}
BUSY_TIMEOUT_MS = 10_000
COMMIT_ATTEMPTS = 60
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0
_RETRYABLE = ("database is locked", "conflict", "Failed to commit DuckLake transaction")
T = TypeVar("T")


class LakeError(ValueError):
    """The lake cannot be used as asked (no lake there, an extension missing): one line."""


def extension_file(name: str) -> Path:
    """The extension shipped in its PyPI wheel for this DuckDB version: nothing is downloaded."""
    package = EXTENSIONS[name]
    wheel = f"{package.replace('_', '-')}=={duckdb.__version__}"
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise LakeError(f"DuckDB extension {name} is missing: pip install '{wheel}'")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
    path = path / f"{name}.duckdb_extension"
    if not path.is_file():
        raise LakeError(f"DuckDB extension {name} does not match duckdb: pip install '{wheel}'")
    return path


def new_session() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake's extensions loaded from their wheels (never fetched)."""
    session = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for name in EXTENSIONS:
        session.execute(f"LOAD {_text(str(extension_file(name)))}")
    session.execute("SET TimeZone = 'UTC'")
    return session


def catalog_path(root: Path) -> Path:
    return root / CATALOG_FILE


def is_lake(root: Path) -> bool:
    """Whether ``root`` holds a finews lake (its catalog file)."""
    return catalog_path(root).is_file()


def attach(
    session: duckdb.DuckDBPyConnection,
    root: Path,
    *,
    read_only: bool,
    snapshot: int | None = None,
    alias: str = ALIAS,
) -> None:
    """Attach the lake at ``root`` as ``alias`` and make it the session's default database."""
    options = ["READ_ONLY"] if read_only else []
    options.append(f"META_BUSY_TIMEOUT {BUSY_TIMEOUT_MS}")
    if not read_only:
        data = root.resolve() / DATA_FOLDER
        options += [
            f"DATA_PATH {_text(str(data) + '/')}",
            "META_JOURNAL_MODE 'WAL'",  # readers never block writers, nor writers readers
            "DATA_INLINING_ROW_LIMIT 0",
        ]
    if snapshot is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
    target = _text(f"ducklake:sqlite:{catalog_path(root.resolve())}")
    session.execute(f"ATTACH {target} AS {alias} ({', '.join(options)})")
    session.execute(f"USE {alias}")


def open_writer(root: Path) -> duckdb.DuckDBPyConnection:
    """A session that writes to the lake at ``root``, created (once, under a lock) if new."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    ensure_lake(root)
    session = new_session()
    attach(session, root, read_only=False)
    return session


def open_reader(root: Path, *, snapshot: int | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only session on an existing lake (a folder without one is refused, not laid out)."""
    root = root.resolve()
    if not is_lake(root):
        raise LakeError(f"no warehouse at {root}: check --warehouse (a crawl creates one)")
    shared_memory = root / f"{CATALOG_FILE}-shm"
    if not os.access(root, os.W_OK) and not os.access(shared_memory, os.W_OK):
        raise LakeError(
            f"reading the warehouse at {root} needs write access to that folder: SQLite keeps "
            f"the catalog's shared-memory file beside {CATALOG_FILE} (WAL mode, so readers and "
            "writers never wait on each other)"
        )
    session = new_session()
    attach(session, root, read_only=True, snapshot=snapshot)
    return session


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """For Python users: a read-only DuckDB session on the warehouse at ``path``.

    The same as a plain ``ATTACH 'ducklake:sqlite:<path>/catalog.sqlite' AS finews (READ_ONLY)``
    followed by ``USE finews``: tables and views are the catalog's own, no finews code runs.
    """
    return open_reader(Path(path).expanduser())


def ensure_lake(root: Path) -> None:
    """Create the catalog, tables and views once. Racing first runs take turns on a lock file
    (concurrent schema changes on one SQLite catalog are a known way to corrupt it)."""
    root.mkdir(parents=True, exist_ok=True)
    with _setup_lock(root):
        session = new_session()
        try:
            attach(session, root, read_only=False)
            statements = ddl_statements(_existing(session))
            if statements:
                session.execute("BEGIN")
                for statement in statements:
                    session.execute(statement)
                session.execute("COMMIT")
        finally:
            session.close()


def _existing(session: duckdb.DuckDBPyConnection) -> set[str]:
    rows = session.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = ?",
        [ALIAS, ALIAS],
    ).fetchall()
    return {name for (name,) in rows}


@contextlib.contextmanager
def _setup_lock(root: Path) -> Iterator[None]:
    with open(root / SETUP_LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def retryable(exc: BaseException) -> bool:
    """A commit that lost a race with another writer: the whole transaction can run again."""
    return isinstance(exc, duckdb.Error) and any(text in str(exc) for text in _RETRYABLE)


def retrying(action: Callable[[], T], *, on_retry: Callable[[], None] | None = None) -> T:
    """``action()``, run again (with backoff and jitter) while it loses races with other
    writers; any other error, or the last attempt's, is raised."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return action()
        except duckdb.Error as exc:
            if not retryable(exc) or attempt == COMMIT_ATTEMPTS - 1:
                raise
        if on_retry is not None:
            on_retry()
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(attempt, 10))
        time.sleep(random.uniform(delay / 2, delay))
    raise AssertionError("unreachable")


def commit(
    session: duckdb.DuckDBPyConnection,
    work: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    tag: str,
    message: str,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run ``work`` in one transaction and commit it, from the start again when it conflicts
    with another writer; ``tag`` (the run id) goes in the snapshot's commit info, so a run's
    snapshots can be found again."""

    def attempt() -> T:
        try:
            session.execute("BEGIN")
            result = work(session)
            session.execute(
                f"CALL {ALIAS}.set_commit_message('finews', ?, extra_info => ?)", [message, tag]
            )
            session.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                session.execute("ROLLBACK")
            raise
        return result

    return retrying(attempt, on_retry=on_retry)


def last_snapshot(session: duckdb.DuckDBPyConnection, tag: str) -> int | None:
    """The newest snapshot committed with ``tag``."""
    row = session.execute(
        f"SELECT max(snapshot_id) FROM {ALIAS}.snapshots() WHERE commit_extra_info = ?", [tag]
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def current_snapshot(session: duckdb.DuckDBPyConnection) -> int:
    row = session.execute(f"SELECT id FROM {ALIAS}.current_snapshot()").fetchone()
    return int(row[0]) if row else 0


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
