"""Reading stored raw pages back, newest per article, in batches (for ``backfill --reextract``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb

from common.links import post_date
from common.records import ArticleRef, FetchResult
from warehouse.lake import ALIAS

_LATEST = f"""
SELECT info_code, info_code_raw, url, final_url, category, content_type, content, fetched_at
FROM {ALIAS}.raw_pages
WHERE {{where}}
QUALIFY row_number() OVER (PARTITION BY info_code ORDER BY fetched_at DESC, run_id DESC) = 1
ORDER BY info_code
"""


@dataclass
class RawPageBatches:
    """Batches of (reference, stored fetch) pairs; ``total`` is known before iterating."""

    session: duckdb.DuckDBPyConnection
    categories: Sequence[str] | None
    since: dt.date | None
    until: dt.date | None
    batch_size: int
    total: int = 0

    def __post_init__(self) -> None:
        sql, params = self._query()
        # the date range is read from each URL, as when iterating (no body is read here)
        urls = self.session.execute(f"SELECT url FROM ({sql})", params).fetchall()
        self.total = sum(1 for (url,) in urls if self._in_range(url))

    def _query(self) -> tuple[str, list[object]]:
        if self.categories:
            return _LATEST.format(where="list_contains(?, category)"), [list(self.categories)]
        return _LATEST.format(where="true"), []

    def _in_range(self, url: str) -> bool:
        day = post_date(url)
        if day is None:
            return self.since is None and self.until is None
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )

    def __iter__(self) -> Iterator[list[tuple[ArticleRef, FetchResult]]]:
        sql, params = self._query()
        cursor = self.session.cursor()
        try:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(self.batch_size):
                batch = [_stored(*row) for row in rows if self._in_range(row[2])]
                if batch:
                    yield batch
        finally:
            cursor.close()


def _stored(
    code: str,
    raw: str,
    url: str,
    final_url: str,
    category: str,
    content_type: str | None,
    content: bytes,
    fetched_at: dt.datetime,
) -> tuple[ArticleRef, FetchResult]:
    ref = ArticleRef(
        url=url, info_code=code, info_code_raw=raw, category=category, listed_on="raw-pages"
    )
    result = FetchResult(
        url=url,
        final_url=final_url,
        status=200,
        content=bytes(content),
        content_type=content_type,
        elapsed_s=0.0,
        attempts=0,
        fetched_at=fetched_at,
    )
    return ref, result


def iter_raw_pages(
    session: duckdb.DuckDBPyConnection,
    *,
    categories: Sequence[str] | None,
    since: dt.date | None,
    until: dt.date | None,
    batch_size: int,
) -> RawPageBatches:
    return RawPageBatches(session, categories, since, until, batch_size)
