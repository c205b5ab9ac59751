"""What the warehouse already holds, read straight from Parquet (no catalog lock involved).

The crawl state lives in the warehouse itself: articles landed, category pages each article
links back to, listing pages with their validators, and the retry queue. The same view SQL as
the catalog is loaded into an in-memory DuckDB, so state and catalog cannot disagree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.catalog import retrying_vanished, sql_list, views_sql
from warehouse.rows import SHANGHAI
from warehouse.snapshot import data_files
from warehouse.writer import ensure_layout


@dataclass(frozen=True, slots=True)
class ListingState:
    url: str
    kind: str
    category: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    checked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PendingRetry:
    url: str
    info_code: str
    category: str | None
    attempts: int


@dataclass
class Known:
    """Ids and URLs already landed, and everything a run needs to stay incremental.

    ``category_pages`` maps a post URL to the category page its back-link names: keyed by URL,
    not id, because the same id's twin in another feed links back to another category.
    """

    info_codes: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    category_pages: dict[str, str] = field(default_factory=dict)
    categorised: set[tuple[str, str]] = field(default_factory=set)
    listings: dict[str, ListingState] = field(default_factory=dict)
    retries: list[PendingRetry] = field(default_factory=list)
    dead_urls: set[str] = field(default_factory=set)
    listing_retries: list[str] = field(default_factory=list)  # category page URLs

    def has(self, info_code: str, url: str) -> bool:
        return info_code in self.info_codes or url in self.urls


def open_state(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the catalog's views over ``root``."""
    ensure_layout(root)
    connection = duckdb.connect()
    connection.execute(views_sql(root))
    return connection


STATE_DAYS = 14  # the site keeps ~3 days of posts: older ids are never listed again


def recent_files(root: Path, table: str, days: int = STATE_DAYS) -> list[Path]:
    """Data files of the ``dt`` partitions within ``days`` of the newest one (and ``unknown``).

    The crawl state only has to recognise posts the site can still list, so it reads these,
    not the whole history: its memory follows the site's window, not the warehouse's age. The
    newest partition is the newest up to tomorrow: a page dated years ahead must not move the
    window away from the site's (its own partition is read too). Retired files are left out, as
    the views leave them out: a delta merge's file holds their rows, and they may be purged.
    """
    by_partition: dict[str, list[str]] = defaultdict(list)
    for name in data_files(root, table):
        by_partition[name.split("/", 1)[0] if "/" in name else ""].append(name)
    dates = {}
    for partition in by_partition:
        with contextlib.suppress(ValueError):
            dates[partition] = dt.date.fromisoformat(partition.removeprefix("dt="))
    horizon = dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=1)
    newest = max((day for day in dates.values() if day <= horizon), default=None)
    cutoff = newest - dt.timedelta(days=days) if newest else dt.date.min
    keep = [p for p in by_partition if p not in dates or dates[p] >= cutoff]
    return sorted(root / table / name for partition in keep for name in by_partition[partition])


def _files_sql(root: Path, table: str, days: int) -> str:
    paths = [root / table / "_schema.parquet", *recent_files(root, table, days)]
    return f"read_parquet({sql_list(paths)}, union_by_name = true, hive_partitioning = false)"


def load_known(root: Path, *, days: int = STATE_DAYS) -> Known:
    """The crawl state: articles and sightings of the recent partitions, listings, retries.

    Read again from the start when a compaction deletes a file it listed meanwhile."""
    root = root.resolve()
    return retrying_vanished(lambda: _load_known(root, days))


def _load_known(root: Path, days: int) -> Known:
    known = Known()
    with open_state(root) as connection:
        articles = _files_sql(root, "articles", days)
        rows = connection.execute(
            f"SELECT info_code, url, any_value(category_page) FROM {articles} "
            "GROUP BY info_code, url"
        ).fetchall()
        for info_code, url, category_page in rows:
            known.info_codes.add(info_code)
            known.urls.add(url)
            if category_page:
                known.category_pages[url] = category_page
        known.categorised = set(
            connection.execute(
                f"SELECT DISTINCT info_code, category FROM {_files_sql(root, 'sightings', days)} "
                f"WHERE category IS NOT NULL "
                f"UNION SELECT DISTINCT info_code, unnest(categories) FROM {articles}"
            ).fetchall()
        )
        for row in connection.execute(
            "SELECT url, kind, category, etag, last_modified, content_hash, checked_at "
            "FROM listing_state WHERE status IN (200, 304)"
        ).fetchall():
            known.listings[row[0]] = ListingState(*row)
        known.retries = [
            PendingRetry(*row)
            for row in connection.execute(
                "SELECT url, info_code, category, attempts FROM retry_queue ORDER BY url"
            ).fetchall()
        ]
        known.dead_urls = {
            row[0] for row in connection.execute("SELECT url FROM dead_pages").fetchall()
        }
        known.listing_retries = [
            row[0]
            for row in connection.execute(
                "SELECT url FROM listing_retry_queue ORDER BY url"
            ).fetchall()
        ]
    return known
