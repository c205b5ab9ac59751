"""The crawl and backfill flows: list → dedupe → fetch + extract (batched) → land → catalog."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.extraction import EXTRACTOR
from tasks.links import category_page_url, post_categories, post_date, slug_from_category_url
from tasks.listing import dedupe_refs
from tasks.records import ArticleBatch, ArticleRef, Failure, ListingBatch
from tasks.settings import Settings, load_settings
from tasks.steps import fetch_articles_task, list_pages_task, refresh_catalog_task
from warehouse.landing import Lander
from warehouse.state import Known, load_known
from warehouse.writer import ensure_layout, remove_stale_temp_files

Page = tuple[str, str, str | None]


@dataclass
class RunReport:
    """The counts a run ends with; printed by the CLI and landed in ``runs``."""

    run_id: str
    flow: str
    site: str
    categories: list[str]
    warehouse: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    elapsed_s: float = 0.0
    categories_listed: int = 0
    pages_fetched: int = 0
    refs_seen: int = 0
    new_articles: int = 0
    new_versions: int = 0
    duplicates_skipped: int = 0
    out_of_range: int = 0
    failures: int = 0
    failure_reasons: list[str] = field(default_factory=list)
    status: str = "running"

    def summary_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "status": self.status,
            "site": self.site,
            "categories": self.categories,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": self.elapsed_s,
            "categories_listed": self.categories_listed,
            "pages_fetched": self.pages_fetched,
            "refs_seen": self.refs_seen,
            "new_articles": self.new_articles,
            "new_versions": self.new_versions,
            "duplicates_skipped": self.duplicates_skipped,
            "failures": self.failures,
            "extractor": EXTRACTOR,
        }


def _chunks(items: Sequence[Any], size: int, workers: int) -> list[list[Any]]:
    """Batches no larger than ``size`` and numerous enough to keep every worker busy."""
    if not items:
        return []
    size = max(1, min(size, math.ceil(len(items) / workers)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class CrawlRun:
    """One run's state: what was listed, queued and landed, and the counters."""

    def __init__(
        self,
        settings: Settings,
        flow_name: str,
        *,
        refetch: bool,
        since: dt.date | None,
        until: dt.date | None,
    ) -> None:
        self.settings = settings
        self.refetch = refetch
        self.since = since
        self.until = until
        self.root = settings.warehouse
        started = dt.datetime.now(dt.UTC)
        run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.report = RunReport(
            run_id=run_id,
            flow=flow_name,
            site=settings.site,
            categories=list(settings.categories),
            warehouse=str(self.root),
            started_at=started,
        )
        self.lander = Lander(self.root, run_id)
        self.known = Known()
        self.listed: set[str] = set()
        self.queued: set[str] = set()
        self.run_categories: dict[str, set[str]] = defaultdict(set)
        self.category_pages: dict[str, str] = {}
        self.logger = get_run_logger()

    def execute(self) -> RunReport:
        clock = time.monotonic()
        ensure_layout(self.root)
        remove_stale_temp_files(self.root)
        self.known = load_known(self.root)
        pages = self._first_pages()
        optional = False
        while pages:
            refs = self._list(pages, optional=optional)
            self._land_articles(self._select(refs))
            pages = self._discovered_pages(refs) if self.settings.all_categories else []
            optional = True
        self.report.finished_at = dt.datetime.now(dt.UTC)
        self.report.elapsed_s = round(time.monotonic() - clock, 3)
        self.report.status = "completed" if self.report.failures == 0 else "completed_with_failures"
        self.lander.run(self.report.summary_row())
        refresh_catalog_task(self.root)
        return self.report

    def _first_pages(self) -> list[Page]:
        site = self.settings.site
        if self.settings.all_categories:
            return [(f"{site}/", "home", None), (f"{site}/feed.xml", "feed", None)]
        return [
            (category_page_url(site, slug), "category", slug) for slug in self.settings.categories
        ]

    def _list(self, pages: list[Page], *, optional: bool) -> list[ArticleRef]:
        pages = [page for page in pages if page[0] not in self.listed]
        self.listed.update(page[0] for page in pages)
        chunks = _chunks(pages, self.settings.batch_size, self.settings.concurrency)
        futures = [
            list_pages_task.submit(self.settings, chunk, optional=optional) for chunk in chunks
        ]
        refs: list[ArticleRef] = []
        for future, chunk in self._completed(futures, chunks):
            batch: ListingBatch | None = self._result(future, chunk, stage="listing")
            if batch is None:
                continue
            self.lander.fetches(batch.fetches)
            self.lander.failures(batch.failures)
            self.lander.sightings(batch.refs)
            self._count_failures(batch.failures)
            self.report.pages_fetched += len(batch.fetches)
            self.report.categories_listed += sum(
                1 for kind, result in batch.fetches if kind == "category" and result.ok
            )
            refs.extend(batch.refs)
        self.report.refs_seen += len(refs)
        for ref in refs:
            if slug_from_category_url(ref.listed_on):
                self.run_categories[ref.info_code].add(ref.category)
        return refs

    def _select(self, refs: list[ArticleRef]) -> list[ArticleRef]:
        """Dedupe within the run and against the warehouse, before fetching anything."""
        unique, _ = dedupe_refs(refs)
        selected = []
        for ref in unique:
            day = post_date(ref.url)
            if (self.since and day and day < self.since) or (
                self.until and day and day > self.until
            ):
                self.report.out_of_range += 1
                continue
            if ref.info_code in self.queued:
                continue
            if not self.refetch and self.known.has(ref.info_code, ref.url):
                continue
            self.queued.add(ref.info_code)
            selected.append(ref)
        self.report.duplicates_skipped += len(refs) - len(selected)
        return selected

    def _land_articles(self, refs: list[ArticleRef]) -> None:
        chunks = _chunks(refs, self.settings.batch_size, self.settings.concurrency)
        futures = [fetch_articles_task.submit(self.settings, chunk) for chunk in chunks]
        for future, chunk in self._completed(futures, chunks):
            batch: ArticleBatch | None = self._result(future, chunk, stage="fetch-extract")
            if batch is None:
                continue
            fresh = [a for a in batch.articles if a.info_code not in self.known.info_codes]
            self.report.new_articles += len(fresh)
            self.report.new_versions += len(batch.articles) - len(fresh)
            self.lander.articles(batch.articles, self.run_categories)
            self.lander.fetches(batch.fetches)
            self.lander.failures(batch.failures)
            self._count_failures(batch.failures)
            self.report.pages_fetched += len(batch.fetches)
            for article in batch.articles:
                if article.category_page:
                    self.category_pages[article.info_code] = article.category_page

    def _discovered_pages(self, refs: Iterable[ArticleRef]) -> list[Page]:
        """Category pages named by the posts' back-links, else guessed from the post URL."""
        pages: dict[str, Page] = {}
        for ref in refs:
            exact = self.category_pages.get(ref.info_code) or self.known.category_pages.get(
                ref.info_code
            )
            if exact:
                pages[exact] = (exact, "category", slug_from_category_url(exact))
                continue
            cats = post_categories(ref.url)
            if cats and len(cats) == 1:
                url = category_page_url(self.settings.site, cats[0])
                pages.setdefault(url, (url, "category", cats[0]))
        return [page for url, page in pages.items() if url not in self.listed]

    def _completed(
        self, futures: list[PrefectFuture], chunks: list[Any]
    ) -> Iterable[tuple[PrefectFuture, Any]]:
        by_future = {id(future): chunk for future, chunk in zip(futures, chunks, strict=True)}
        for future in as_completed(futures):
            yield future, by_future[id(future)]

    def _result(self, future: PrefectFuture, chunk: list[Any], *, stage: str) -> Any:
        """A crashed batch task becomes one failure per item, never a lost run."""
        try:
            return future.result()
        except Exception as exc:
            now = dt.datetime.now(dt.UTC)
            failures = [
                Failure(
                    url=item[0] if isinstance(item, tuple) else item.url,
                    info_code=None if isinstance(item, tuple) else item.info_code,
                    stage=stage,
                    reason=f"task crashed: {type(exc).__name__}: {exc}",
                    status=None,
                    failed_at=now,
                )
                for item in chunk
            ]
            self.lander.failures(failures)
            self._count_failures(failures)
            return None

    def _count_failures(self, failures: Sequence[Failure]) -> None:
        self.report.failures += len(failures)
        for failure in failures:
            if len(self.report.failure_reasons) < 20:
                self.report.failure_reasons.append(f"{failure.url}: {failure.reason}")
            self.logger.warning("failed %s (%s): %s", failure.url, failure.stage, failure.reason)


def _settings(config_file: str | None, **overrides: Any) -> Settings:
    return load_settings(Path(config_file) if config_file else None, **overrides)


def _report_dict(report: RunReport) -> dict[str, Any]:
    data = asdict(report)
    data["started_at"] = report.started_at.isoformat()
    data["finished_at"] = report.finished_at.isoformat() if report.finished_at else None
    return data


@flow(name="crawl", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)
def crawl(
    categories: list[str] | None = None,
    site: str | None = None,
    warehouse: str | None = None,
    rps: float | None = None,
    concurrency: int | None = None,
    refetch: bool = False,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Scheduled job: list the categories (or discover all), land every article not yet held."""
    settings = _settings(
        config_file,
        categories=categories,
        site=site,
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    report = CrawlRun(settings, "crawl", refetch=refetch, since=None, until=None).execute()
    return _report_dict(report)


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)
def backfill(
    categories: list[str] | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    refetch: bool = False,
    site: str | None = None,
    warehouse: str | None = None,
    rps: float | None = None,
    concurrency: int | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """Manual run over categories and a publication-date range, optionally refetching."""
    if since and until and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")
    settings = _settings(
        config_file,
        categories=categories,
        site=site,
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    report = CrawlRun(settings, "backfill", refetch=refetch, since=since, until=until).execute()
    return _report_dict(report)
