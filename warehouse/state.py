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


STATE_DAYS = 14  # the site keeps ~3 days of posts: older ids are never listed again


def recent_files(root: Path, table: str, days: int = STATE_DAYS) -> list[Path]:
    """Data files of the ``dt`` partitions within ``days`` of the newest one (and ``unknown``).

    The crawl state only has to recognise posts the site can still list, so it reads these,
    not the whole history: its memory follows the site's window, not the warehouse's age.
    """
    folders = sorted((root / table).glob("dt=*"))
    dated = [folder for folder in folders if folder.name != "dt=unknown"]
    keep = [folder for folder in folders if folder.name == "dt=unknown"]
    if dated:
        try:
            newest = dt.date.fromisoformat(dated[-1].name.removeprefix("dt="))
        except ValueError:
            keep += dated
        else:
            cutoff = (newest - dt.timedelta(days=days)).isoformat()
            keep += [folder for folder in dated if folder.name.removeprefix("dt=") >= cutoff]
    return sorted(path for folder in keep for path in folder.glob("part-*.parquet"))


def _files_sql(root: Path, table: str, days: int) -> str:
    paths = [root / table / "_schema.parquet", *recent_files(root, table, days)]
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def load_known(root: Path, *, days: int = STATE_DAYS) -> Known:
    """The crawl state: articles and sightings of the recent partitions, listings, retries."""
    known = Known()
    root = root.resolve()
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
    return known
