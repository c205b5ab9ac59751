"""Landing a run in the lake: one commit per landed batch, one per listing batch, one at the end.

Each commit is one DuckLake transaction, run again from the start when it loses a race with
another writer (``lake.commit``), so what it reads (the current ``articles`` row, the
sightings already there) is never stale and every info_code keeps exactly one ``articles`` row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from common.records import Article, ArticleBatch, ArticleRef, Failure, FetchResult
from warehouse.lake import ALIAS, commit, current_snapshot, last_snapshot
from warehouse.rows import (
    article_rows,
    failure_rows,
    fetch_rows,
    raw_page_rows,
    sighting_rows,
)
from warehouse.schema import ARTICLES, TABLES

_COLUMNS = ", ".join(field.name for field in ARTICLES)

# The incoming versions (the newest per info_code), each with the categories it was ever
# listed in merged in, and how it compares with the current ``articles`` row.
_LANDING = f"""
WITH incoming AS (
    SELECT * FROM incoming_articles
    QUALIFY row_number() OVER (PARTITION BY info_code ORDER BY fetched_at DESC, run_id DESC) = 1
),
listed AS (
    SELECT info_code, list(DISTINCT category) AS categories
    FROM {ALIAS}.sightings
    WHERE category IS NOT NULL AND info_code IN (SELECT info_code FROM incoming)
    GROUP BY info_code
)
SELECT incoming.* REPLACE (
           list_sort(list_distinct(flatten([
               incoming.categories,
               coalesce(current.categories, []),
               coalesce(listed.categories, [])
           ]))) AS categories
       ),
       current.info_code IS NULL AS is_new,
       current.content_hash IS NOT DISTINCT FROM incoming.content_hash AS same_body,
       current.info_code IS NULL
           OR incoming.fetched_at > current.fetched_at
           OR (incoming.fetched_at = current.fetched_at AND incoming.run_id > current.run_id)
           AS newer
FROM incoming
LEFT JOIN {ALIAS}.articles AS current ON current.info_code = incoming.info_code
LEFT JOIN listed ON listed.info_code = incoming.info_code
"""

_NEW_VERSIONS = f"""
INSERT INTO {ALIAS}.article_versions BY NAME
SELECT {_COLUMNS} FROM landing AS l
WHERE NOT EXISTS (
    SELECT 1 FROM {ALIAS}.article_versions AS v
    WHERE v.info_code = l.info_code AND v.content_hash = l.content_hash
)
"""

_NEW_SIGHTINGS = f"""
INSERT INTO {ALIAS}.sightings BY NAME
SELECT * FROM incoming_sightings AS r
WHERE NOT EXISTS (
    SELECT 1 FROM {ALIAS}.sightings AS s
    WHERE s.info_code = r.info_code AND s.category = r.category
)
"""

# Articles already landed that a new sighting lists in one more category.
_MORE_CATEGORIES = f"""
SELECT a.* REPLACE (list_sort(list_distinct(list_concat(a.categories, n.categories)))
                    AS categories)
FROM {ALIAS}.articles AS a
JOIN (
    SELECT info_code, list(DISTINCT category) AS categories
    FROM incoming_sightings GROUP BY info_code
) AS n ON n.info_code = a.info_code
WHERE NOT list_has_all(a.categories, n.categories)
"""


@dataclass(frozen=True, slots=True)
class Landed:
    """What one batch commit did to ``articles``."""

    new: int = 0  # info_codes that had no row
    replaced: int = 0  # rows replaced by a newer fetch
    unchanged: int = 0  # re-extractions whose body was the current one (nothing landed)


def _arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TABLES[table])


class Lander:
    """One run's commits. ``session`` is a DuckDB connection (a cursor per thread) with the
    lake attached; every commit carries the run id."""

    def __init__(
        self,
        session: duckdb.DuckDBPyConnection,
        run_id: str,
        *,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self.run_id = run_id
        self.on_retry = on_retry

    def _commit(self, message: str, work: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        return commit(self.session, work, tag=self.run_id, message=message, on_retry=self.on_retry)

    @staticmethod
    def _append(session: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            session.register("appended_rows", _arrow(table, rows))
            try:
                session.execute(f"INSERT INTO {ALIAS}.{table} BY NAME SELECT * FROM appended_rows")
            finally:
                session.unregister("appended_rows")

    def batch(
        self,
        batch: ArticleBatch,
        categories: Mapping[str, Iterable[str]],
        *,
        only_changed: bool = False,
    ) -> Landed:
        """Everything one fetch-extract batch produced, in one commit. ``only_changed``
        (re-extraction) lands an article only when its body differs from the current one."""
        articles = _arrow("articles", article_rows(batch.articles, categories, self.run_id))
        raw = raw_page_rows(batch.raw_pages, self.run_id)
        fetches = fetch_rows(batch.fetches, self.run_id)
        failures = failure_rows(batch.failures, self.run_id)

        def work(session: duckdb.DuckDBPyConnection) -> Landed:
            self._append(session, "raw_pages", raw)
            self._append(session, "fetch_log", fetches)
            self._append(session, "failures", failures)
            return _land_articles(session, articles, only_changed=only_changed)

        if not (articles.num_rows or raw or fetches or failures):
            return Landed()
        return self._commit("batch", work)

    def articles(self, articles: Sequence[Article], *, only_changed: bool = False) -> Landed:
        return self.batch(ArticleBatch(tuple(articles), (), ()), {}, only_changed=only_changed)

    def listing(
        self,
        fetches: Iterable[tuple[str, FetchResult]],
        failures: Iterable[Failure],
        sightings: Iterable[ArticleRef],
    ) -> None:
        """A listing batch: its fetches, failures and the (post, category) pairs it found,
        landed once each; articles already landed gain the categories they were missing."""
        now = dt.datetime.now(dt.UTC)
        fetch_list = fetch_rows(fetches, self.run_id)
        failure_list = failure_rows(failures, self.run_id)
        seen = [row for row in sighting_rows(sightings, now, self.run_id) if row["category"]]

        def work(session: duckdb.DuckDBPyConnection) -> None:
            self._append(session, "fetch_log", fetch_list)
            self._append(session, "failures", failure_list)
            if seen:
                session.register("incoming_sightings", _arrow("sightings", seen))
                try:
                    session.execute(_NEW_SIGHTINGS)
                    grown = session.execute(_MORE_CATEGORIES).to_arrow_table()
                    _replace_rows(session, grown)
                finally:
                    session.unregister("incoming_sightings")

        if fetch_list or failure_list or seen:
            self._commit("listing", work)

    def failures(self, failures: Sequence[Failure]) -> None:
        rows = failure_rows(failures, self.run_id)
        if rows:
            self._commit("failures", lambda session: self._append(session, "failures", rows))

    def finish(self, listing_rows: list[dict[str, Any]], summary: Mapping[str, Any]) -> int:
        """The run's last commit: the listing pages' new state (only now, once their posts
        have landed) and its ``runs`` row, which names the snapshot the run's data ends at."""
        snapshot = last_snapshot(self.session, self.run_id)
        if snapshot is None:
            snapshot = current_snapshot(self.session)
        row = {**summary, "snapshot_id": snapshot}

        def work(session: duckdb.DuckDBPyConnection) -> None:
            self._append(session, "listing_checks", listing_rows)
            self._append(session, "runs", [row])

        self._commit("run", work)
        return snapshot


def _land_articles(
    session: duckdb.DuckDBPyConnection, articles: pa.Table, *, only_changed: bool
) -> Landed:
    if not articles.num_rows:
        return Landed()
    session.register("incoming_articles", articles)
    try:
        landing = session.execute(_LANDING).to_arrow_table()
    finally:
        session.unregister("incoming_articles")
    keep = [
        newer and not (only_changed and same)
        for newer, same in zip(
            landing.column("newer").to_pylist(),
            landing.column("same_body").to_pylist(),
            strict=True,
        )
    ]
    flags = landing.select(["is_new", "same_body"]).to_pylist()
    landing = landing.filter(pa.array(keep, pa.bool_())).drop_columns(
        ["is_new", "same_body", "newer"]
    )
    session.register("landing", landing)
    try:
        session.execute(_NEW_VERSIONS)
    finally:
        session.unregister("landing")
    _replace_rows(session, landing)
    new = sum(1 for flag, kept in zip(flags, keep, strict=True) if kept and flag["is_new"])
    return Landed(
        new=new,
        replaced=sum(keep) - new,
        unchanged=sum(1 for flag in flags if only_changed and flag["same_body"]),
    )


def _replace_rows(session: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    """``rows`` become the ``articles`` rows of their info_codes (one each)."""
    if not rows.num_rows:
        return
    session.register("replacing_rows", rows)
    try:
        session.execute(
            f"DELETE FROM {ALIAS}.articles "
            "WHERE info_code IN (SELECT info_code FROM replacing_rows)"
        )
        session.execute(
            f"INSERT INTO {ALIAS}.articles BY NAME SELECT {_COLUMNS} FROM replacing_rows"
        )
    finally:
        session.unregister("replacing_rows")
