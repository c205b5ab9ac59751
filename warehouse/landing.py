"""Landing one run's output: articles, sightings, fetch log, failures and the run summary."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tasks.records import Article, ArticleRef, Failure, FetchResult
from warehouse.rows import article_rows, failure_rows, fetch_rows, sighting_rows
from warehouse.writer import write_rows


class Lander:
    """Writes each batch as soon as it is ready, so a run never holds the whole crawl."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self._seq = itertools.count()

    def _name(self) -> str:
        return f"{self.run_id}-{next(self._seq):05d}"

    def articles(self, articles: Iterable[Article], categories: Mapping[str, Iterable[str]]) -> int:
        rows = article_rows(articles, categories, self.run_id)
        if rows:
            write_rows(self.root, "articles", rows, partition="dt", name=self._name())
        return len(rows)

    def sightings(self, refs: Iterable[ArticleRef]) -> None:
        rows = sighting_rows(refs, dt.datetime.now(dt.UTC), self.run_id)
        if rows:
            write_rows(self.root, "sightings", rows, partition="dt", name=self._name())

    def fetches(self, fetches: Iterable[tuple[str, FetchResult]]) -> None:
        rows = fetch_rows(fetches, self.run_id)
        if rows:
            write_rows(self.root, "fetch_log", rows, partition="dt", name=self._name())

    def failures(self, failures: Iterable[Failure]) -> None:
        rows = failure_rows(failures, self.run_id)
        if rows:
            write_rows(self.root, "failures", rows, partition="dt", name=self._name())

    def run(self, summary: Mapping[str, Any]) -> None:
        write_rows(self.root, "runs", [dict(summary)], partition=None, name=self.run_id)
