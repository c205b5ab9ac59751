"""What the lake already holds, asked by a crawl: exact, with no date window.

The known-id check is a semi-join in DuckDB (the run's references against every article ever
landed), not a Python set of every id, so it stays exact and small however old the lake is.
What is loaded whole is small by nature: the listing pages' state and the retry queues.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from common.records import ArticleRef
from warehouse.lake import ALIAS


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
class CrawlState:
    """Listing pages with their validators, and the pages to try again or leave alone."""

    listings: dict[str, ListingState] = field(default_factory=dict)
    retries: list[PendingRetry] = field(default_factory=list)
    dead_urls: set[str] = field(default_factory=set)
    listing_retries: list[str] = field(default_factory=list)  # category page URLs


@dataclass(frozen=True, slots=True)
class KnownRefs:
    """Which of some references the lake already holds, by info_code or by URL."""

    info_codes: frozenset[str] = frozenset()
    urls: frozenset[str] = frozenset()

    def has(self, ref: ArticleRef) -> bool:
        return ref.info_code in self.info_codes or ref.url in self.urls


def known_refs(session: duckdb.DuckDBPyConnection, refs: Iterable[ArticleRef]) -> KnownRefs:
    """The references whose info_code (or URL) already landed: one semi-join per table."""
    pairs = {(ref.info_code, ref.url) for ref in refs}
    if not pairs:
        return KnownRefs()
    codes, urls = zip(*pairs, strict=True)
    asked = pa.table(
        {"info_code": pa.array(codes, pa.string()), "url": pa.array(urls, pa.string())}
    )
    session.register("asked_refs", asked)
    try:
        known_codes = session.execute(
            "SELECT DISTINCT info_code FROM asked_refs "
            f"WHERE info_code IN (SELECT info_code FROM {ALIAS}.articles)"
        ).fetchall()
        known_urls = session.execute(
            "SELECT DISTINCT url FROM asked_refs "
            f"WHERE url IN (SELECT url FROM {ALIAS}.article_versions)"
        ).fetchall()
    finally:
        session.unregister("asked_refs")
    return KnownRefs(frozenset(c for (c,) in known_codes), frozenset(u for (u,) in known_urls))


def category_pages(session: duckdb.DuckDBPyConnection, urls: Iterable[str]) -> dict[str, str]:
    """The category page each landed post URL links back to (its exact slug)."""
    wanted = sorted(set(urls))
    if not wanted:
        return {}
    session.register("asked_urls", pa.table({"url": pa.array(wanted, pa.string())}))
    try:
        rows = session.execute(
            f"SELECT url, any_value(category_page) FROM {ALIAS}.article_versions "
            "WHERE category_page IS NOT NULL AND url IN (SELECT url FROM asked_urls) GROUP BY url"
        ).fetchall()
    finally:
        session.unregister("asked_urls")
    return dict(rows)


def load_state(session: duckdb.DuckDBPyConnection) -> CrawlState:
    """Listing pages that listed (200 or 304), the retry queue, dead pages, listing retries."""
    state = CrawlState()
    for row in session.execute(
        "SELECT url, kind, category, etag, last_modified, content_hash, checked_at "
        f"FROM {ALIAS}.listing_state WHERE status IN (200, 304)"
    ).fetchall():
        state.listings[row[0]] = ListingState(*row)
    state.retries = [
        PendingRetry(*row)
        for row in session.execute(
            f"SELECT url, info_code, category, attempts FROM {ALIAS}.retry_queue ORDER BY url"
        ).fetchall()
    ]
    state.dead_urls = {
        url for (url,) in session.execute(f"SELECT url FROM {ALIAS}.dead_pages").fetchall()
    }
    state.listing_retries = [
        url
        for (url,) in session.execute(
            f"SELECT url FROM {ALIAS}.listing_retry_queue ORDER BY url"
        ).fetchall()
    ]
    return state


def current_hashes(session: duckdb.DuckDBPyConnection, codes: Iterable[str]) -> dict[str, str]:
    """The current body hash of some info_codes."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    session.register("asked_codes", pa.table({"info_code": pa.array(wanted, pa.string())}))
    try:
        return dict(
            session.execute(
                f"SELECT info_code, content_hash FROM {ALIAS}.articles "
                "WHERE info_code IN (SELECT info_code FROM asked_codes)"
            ).fetchall()
        )
    finally:
        session.unregister("asked_codes")
