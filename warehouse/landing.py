"""Landing one run's output: articles, raw pages, sightings, fetch log, failures, state, summary."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common.records import Article, ArticleBatch, ArticleRef, Failure, FetchResult
from warehouse.rows import (
    article_rows,
    failure_rows,
    fetch_rows,
    raw_page_rows,
    sighting_rows,
)
from warehouse.writer import write_rows


class Lander:
    """Writes each batch as soon as it is ready, so a run never holds the whole crawl."""

    def __init__(self, root: Path, run_id: str, tag: str = "") -> None:
        self.root = root
        self.run_id = run_id
        self._prefix = f"{run_id}-{tag}" if tag else run_id
        self._seq = itertools.count()

    def _write(self, table: str, rows: list[dict[str, Any]], partition: str | None = "dt") -> int:
        if rows:
            name = f"{self._prefix}-{next(self._seq):05d}"
            write_rows(self.root, table, rows, partition=partition, name=name)
        return len(rows)

    def articles(self, articles: Iterable[Article], categories: Mapping[str, Iterable[str]]) -> int:
        return self._write("articles", article_rows(articles, categories, self.run_id))

    def raw_pages(self, pages: Iterable[tuple[ArticleRef, FetchResult]]) -> int:
        return self._write("raw_pages", raw_page_rows(pages, self.run_id))

    def sightings(self, refs: Iterable[ArticleRef]) -> int:
        return self._write("sightings", sighting_rows(refs, dt.datetime.now(dt.UTC), self.run_id))

    def fetches(self, fetches: Iterable[tuple[str, FetchResult]]) -> int:
        return self._write("fetch_log", fetch_rows(fetches, self.run_id))

    def failures(self, failures: Iterable[Failure]) -> int:
        return self._write("failures", failure_rows(failures, self.run_id))

    def listing_state_rows(self, rows: list[dict[str, Any]]) -> int:
        """Rows made by ``rows.listing_state_rows`` as pages were listed."""
        return self._write("listing_state", rows)

    def batch(self, batch: ArticleBatch, categories: Mapping[str, Iterable[str]]) -> None:
        """Everything one fetch-extract batch produced, raw pages first."""
        self.raw_pages(batch.raw_pages)
        self.articles(batch.articles, categories)
        self.fetches(batch.fetches)
        self.failures(batch.failures)

    def run(self, summary: Mapping[str, Any]) -> None:
        self._write("runs", [dict(summary)], partition=None)
