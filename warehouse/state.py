"""What the warehouse already holds, read straight from Parquet (no catalog lock involved).

The crawl state lives in the warehouse itself: articles landed, category pages each article
links back to, listing pages with their validators, and the retry queue. The same view SQL as
the catalog is loaded into an in-memory DuckDB, so state and catalog cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.catalog import views_sql
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

    def has(self, info_code: str, url: str) -> bool:
        return info_code in self.info_codes or url in self.urls


def open_state(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the catalog's views over ``root``."""
    ensure_layout(root)
    connection = duckdb.connect()
    connection.execute(views_sql(root))
    return connection


def load_known(root: Path) -> Known:
    known = Known()
    with open_state(root) as connection:
        rows = connection.execute(
            "SELECT info_code, url, any_value(category_page) FROM article_versions "
            "GROUP BY info_code, url"
        ).fetchall()
        for info_code, url, category_page in rows:
            known.info_codes.add(info_code)
            known.urls.add(url)
            if category_page:
                known.category_pages[url] = category_page
        known.categorised = set(
            connection.execute(
                "SELECT DISTINCT info_code, category FROM sightings WHERE category IS NOT NULL "
                "UNION SELECT DISTINCT info_code, unnest(categories) FROM article_versions"
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
    return known
