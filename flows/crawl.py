"""The crawl and backfill flows: list → dedupe → fetch + extract (batched) → land, each batch
one commit to the lake."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from common.links import post_categories, slug_from_category_url
from common.records import ArticleBatch, ArticleRef, Failure, FetchResult, ListingBatch
from flows.planner import Page, Planner
from flows.reports import publish_progress, publish_report, start_progress
from flows.run_report import RunReport, outcome
from tasks.batches import check_site
from tasks.decoding import page_text
from tasks.listing import parse_home_groups
from tasks.settings import MAX_CONCURRENCY, Settings, load_settings
from tasks.steps import fetch_extract_task, list_pages_task, reextract_task
from tasks.workers import release_memory, use_system_allocator, workers_in_use
from warehouse.lake import open_writer
from warehouse.landing import Lander
from warehouse.rawstore import iter_raw_pages
from warehouse.rows import listing_state_rows
from warehouse.state import load_state

RawPage = tuple[ArticleRef, FetchResult]

# The site the caller has just probed (the command line does, to fail in one line before
# Prefect starts); a run of that site skips its own probe. Deployment runs always probe.
_probed_site: ContextVar[str | None] = ContextVar("finews_probed_site", default=None)


@contextmanager
def site_probed(site: str) -> Iterator[None]:
    """Runs started inside, of ``site``, do not ask it for ``/robots.txt`` a second time."""
    token = _probed_site.set(site)
    try:
        yield
    finally:
        _probed_site.reset(token)


LISTING_BATCH = 10


# The run itself keeps at most ``concurrency`` batch task runs in flight (``_bounded``), so the
# setting holds however the flow is called: the command line, a deployment's run, a test. The
# task runner's own bound is the setting's largest value: never the one that bites.
TASK_RUNNER = ThreadPoolTaskRunner(max_workers=MAX_CONCURRENCY)


def _bounded(
    chunks: Iterable[Any],
    submit: Callable[[int, Any], PrefectFuture[Any]],
    window: int,
) -> Iterator[tuple[PrefectFuture[Any], Any]]:
    """Submit chunks keeping at most ``window`` in flight; yield each as it completes.

    ``window`` is ``concurrency``: the number of batch task runs a run has at once. The next
    chunk is submitted before a finished one is yielded, so no task slot waits on the caller.
    Results are dropped once yielded, so memory holds a window of batches, not the crawl.
    """
    pending: dict[int, tuple[PrefectFuture[Any], Any]] = {}
    queue = iter(enumerate(chunks))
    for index, chunk in itertools.islice(queue, window):
        pending[index] = (submit(index, chunk), chunk)
    while pending:
        by_future = {id(future): index for index, (future, _) in pending.items()}
        future = next(as_completed([future for future, _ in pending.values()]))
        done = pending.pop(by_future[id(future)])
        for next_index, chunk in itertools.islice(queue, 1):
            pending[next_index] = (submit(next_index, chunk), chunk)
        yield done


def _chunks(items: Sequence[Any], size: int, workers: int) -> list[list[Any]]:
    """Batches no larger than ``size`` and numerous enough to keep every worker busy."""
    if not items:
        return []
    size = max(1, min(size, math.ceil(len(items) / workers)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class CrawlRun:
    """One run: it plans (``Planner``), counts (``RunReport``) and lands (``Lander``, one
    commit per batch), and drives the batch task runs in between."""

    def __init__(
        self,
        settings: Settings,
        flow_name: str,
        *,
        refetch: bool = False,
        full: bool = False,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> None:
        self.settings = settings
        self.root = settings.warehouse
        started = dt.datetime.now(dt.UTC)
        # sortable to the microsecond: ``articles`` keeps the latest fetch, ties broken on
        # run_id (a re-extraction keeps the stored page's fetched_at)
        run_id = f"{started:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        full = full or refetch or since is not None or until is not None
        self.report = RunReport(
            run_id=run_id,
            flow=flow_name,
            site=settings.site,
            categories=list(settings.categories),
            warehouse=str(self.root),
            mode="full" if full else "incremental",
            started_at=started,
        )
        use_system_allocator()  # what this process lands, it lands with less memory held
        self.refetch, self.full, self.since, self.until = refetch, full, since, until
        self.session: Any = None
        self.lander: Lander | None = None
        self.plan: Planner | None = None
        self.run_categories: dict[str, set[str]] = defaultdict(set)
        self.sighted: set[tuple[str, str]] = set()
        self.listing_rows: list[dict[str, Any]] = []
        self.logger = get_run_logger()
        self._clock = time.monotonic()
        self._progress: Any = None

    def _count_retry(self) -> None:
        self.report.commit_retries += 1

    def prepare(self, *, offline: bool = False) -> None:
        """Check the site answers before anything is written; then open the lake and read the
        crawl state."""
        if not offline and _probed_site.get() != self.settings.site:
            check_site(self.settings)
        self.session = open_writer(self.root)
        self.lander = Lander(self.session, self.report.run_id, on_retry=self._count_retry)
        self.plan = Planner(
            self.settings,
            self.session,
            self.report,
            full=self.full,
            refetch=self.refetch,
            since=self.since,
            until=self.until,
            state=load_state(self.session),
        )
        if not offline and self.settings.all_categories:
            self.plan.listing_retries = [
                (url, "category", slug)
                for url in self.plan.state.listing_retries
                if (slug := slug_from_category_url(url)) is not None
            ]
        if self.plan.listing_retries:
            self.report.retried += len(self.plan.listing_retries)
            self.logger.info(
                "listing again %d category page(s) whose last listing failed",
                len(self.plan.listing_retries),
            )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def crawl(self) -> RunReport:
        """List, dedupe, fetch, land; incremental unless ``full``."""
        try:
            self.prepare()
            assert self.plan is not None
            if self.report.flow == "backfill":
                self._progress = start_progress()
            with workers_in_use():
                self._retry_pending()
                pages = self.plan.first_pages()
                rounds = 0
                while pages:
                    refs = self._list(pages, optional=rounds > 0)
                    self._land_articles(self.plan.select(refs))
                    rounds += 1
                    more = self.settings.all_categories and (self.full or rounds == 1)
                    pages = self.plan.next_pages(refs) if more else []
            return self._finish()
        finally:
            self.close()

    def reextract(self) -> RunReport:
        """Re-extract stored raw pages with the current extractor; no request is made."""
        try:
            self.prepare(offline=True)
            self._progress = start_progress()
            batches = iter_raw_pages(
                self.session,
                categories=None if self.settings.all_categories else self.settings.categories,
                since=self.since,
                until=self.until,
                batch_size=self.settings.batch_size,
            )
            total = max(1, batches.total)
            with workers_in_use():
                self._reextract_batches(batches, total)
            return self._finish()
        finally:
            self.close()

    def _reextract_batches(self, batches: Iterable[list[RawPage]], total: int) -> None:
        """Batches are task runs like a crawl's: a crashed one is recorded, the run goes on.
        Only bodies that changed land, as new versions."""
        assert self.lander is not None
        done = 0

        def submit(_: int, chunk: list[RawPage]) -> PrefectFuture[Any]:
            return reextract_task.submit(quote(self.settings), quote(chunk))

        for future, chunk in _bounded(batches, submit, self.settings.concurrency):
            batch: ArticleBatch | None = self._result(future, chunk, stage="reextract")
            done += len(chunk)
            if batch is not None:
                landed = self.lander.articles(batch.articles, only_changed=True)
                self.report.commits += 1
                self.report.new_versions += landed.new + landed.replaced
                self.report.unchanged += landed.unchanged
                self._count_failures(batch.failures)
            publish_progress(self._progress, 100 * done / total)

    def _finish(self) -> RunReport:
        assert self.lander is not None
        report = self.report
        report.finished_at = dt.datetime.now(dt.UTC)
        report.elapsed_s = round(time.monotonic() - self._clock, 3)
        report.status = "completed" if report.failures == 0 else "completed_with_failures"
        report.commits += 1
        self.lander.finish(self.listing_rows, report.summary_row())
        publish_progress(self._progress, 100.0)
        publish_report(report.as_dict())
        return report

    def _retry_pending(self) -> None:
        """Pages of the retry queue are tried again first (not in a date-bounded backfill)."""
        assert self.plan is not None
        if self.plan.bounded:
            return
        refs = []
        for pending in self.plan.state.retries:
            raw = pending.url.rsplit("/", 1)[-1].removesuffix(".html")
            refs.append(
                ArticleRef(
                    url=pending.url,
                    info_code=pending.info_code,
                    info_code_raw=raw,
                    category=pending.category or " ".join(post_categories(pending.url) or []),
                    listed_on="retry-queue",
                )
            )
        if refs:
            self.report.retried += len(refs)
            self.logger.info("retrying %d page(s) from the retry queue", len(refs))
            self._land_articles(self.plan.select(refs, retry=True))

    def _list(self, pages: list[Page], *, optional: bool) -> list[ArticleRef]:
        assert self.plan is not None and self.lander is not None
        pages = self.plan.unlisted(pages)
        categories = {url: category for url, _, category in pages}
        # Listing pages are big (a category page is ~0.25 MB): small batches, a bounded number
        # in flight, each dropped once read, so a full listing never sits in memory at once.
        chunks = _chunks(pages, LISTING_BATCH, self.settings.concurrency)
        validators = self.plan.validators(pages)

        def submit(_: int, chunk: list[Page]) -> PrefectFuture[Any]:
            return list_pages_task.submit(
                quote(self.settings), quote(chunk), optional=optional, validators=quote(validators)
            )

        refs: list[ArticleRef] = []
        for future, chunk in _bounded(chunks, submit, self.settings.concurrency):
            batch: ListingBatch | None = self._result(future, chunk, stage="listing")
            release_memory()  # the previous pages' buffers, freed on the task threads' heaps
            if batch is None:
                continue
            self._count_failures(batch.failures, landed=True)
            self.report.pages_fetched += len(batch.fetches)
            found = Counter(ref.listed_on for ref in batch.refs)
            for kind, result in batch.fetches:
                if result.ok or result.not_modified:
                    page = (kind, categories.get(result.url), result, found[result.final_url])
                    # rows now, not results: a listing page's bytes are not kept for the run
                    self.listing_rows += listing_state_rows([page], self.report.run_id)
                    self.report.categories_listed += kind == "category"
                    self.report.not_modified += result.not_modified
                    if kind == "home" and result.ok:
                        self.plan.note_home(
                            parse_home_groups(
                                page_text(result), result.final_url, self.settings.site
                            )
                        )
            refs.extend(batch.refs)
            # one commit per listing batch: its fetches, failures and new sightings
            self.lander.listing(batch.fetches, batch.failures, self._new_sightings(batch.refs))
            self.report.commits += 1
        self.report.refs_seen += len(refs)
        release_memory()
        return refs

    def _new_sightings(self, refs: Iterable[ArticleRef]) -> list[ArticleRef]:
        """Remember each post's categories for this run; the pairs new to this run land (the
        lake skips those it holds)."""
        fresh = []
        for ref in refs:
            if slug_from_category_url(ref.listed_on):
                self.run_categories[ref.info_code].add(ref.category)
                if (ref.info_code, ref.category) not in self.sighted:
                    self.sighted.add((ref.info_code, ref.category))
                    fresh.append(ref)
        return fresh

    def _land_articles(self, refs: list[ArticleRef]) -> None:
        """Batches go to the workers; each is landed in one commit as soon as it comes back."""
        assert self.plan is not None and self.lander is not None
        chunks = _chunks(refs, self.settings.batch_size, self.settings.concurrency)
        done = 0

        def submit(_: int, chunk: list[ArticleRef]) -> PrefectFuture[Any]:
            return fetch_extract_task.submit(quote(self.settings), quote(chunk))

        for future, chunk in _bounded(chunks, submit, self.settings.concurrency):
            batch: ArticleBatch | None = self._result(future, chunk, stage="fetch-extract")
            done += len(chunk)
            if batch is None:
                continue
            categories = {
                ref.info_code: sorted(self.run_categories.get(ref.info_code, ())) for ref in chunk
            }
            landed = self.lander.batch(batch, categories)
            self.report.commits += 1
            self.report.new_articles += landed.new
            self.report.new_versions += landed.replaced
            self._count_failures(batch.failures, landed=True)
            self.report.pages_fetched += len(batch.fetches)
            self.plan.found_category_pages.update(
                (article.url, article.category_page)
                for article in batch.articles
                if article.category_page
            )
            if self._progress is not None and refs:
                publish_progress(self._progress, min(99.0, 100 * done / len(refs)))

    def _result(self, future: PrefectFuture[Any], chunk: list[Any], *, stage: str) -> Any:
        """A crashed batch task becomes one failure per item, never a lost run.

        Items are listing pages (url, kind, category), references, or stored raw pages
        (reference, fetch).
        """
        try:
            return future.result()
        except Exception as exc:
            now = dt.datetime.now(dt.UTC)
            failures = []
            for item in chunk:
                head = item[0] if isinstance(item, tuple) else item
                ref = head if isinstance(head, ArticleRef) else None
                failures.append(
                    Failure(
                        url=ref.url if ref else head,
                        info_code=ref.info_code if ref else None,
                        stage=stage,
                        reason=f"task crashed: {type(exc).__name__}: {exc}",
                        status=None,
                        failed_at=now,
                        transient=True,
                        category=ref.category if ref else None,
                    )
                )
            self._count_failures(failures)
            return None

    def _count_failures(self, failures: Sequence[Failure], *, landed: bool = False) -> None:
        """Count and log failures; land them unless their batch's commit does."""
        assert self.lander is not None
        if not landed and failures:
            self.lander.failures(failures)
            self.report.commits += 1
        self.report.failures += len(failures)
        for failure in failures:
            if len(self.report.failure_reasons) < 20:
                self.report.failure_reasons.append(f"{failure.url}: {failure.reason}")
            self.logger.warning("failed %s (%s): %s", failure.url, failure.stage, failure.reason)


def flow_settings(config_file: str | None, **overrides: Any) -> Settings:
    """A flow's settings: its ``config_file`` parameter (a path, or None) and its overrides."""
    return load_settings(Path(config_file) if config_file else None, **overrides)


@flow(name="crawl", task_runner=TASK_RUNNER, log_prints=False)
def crawl(
    categories: list[str] | None = None,
    site: str | None = None,
    warehouse: str | None = None,
    rps: float | None = None,
    concurrency: int | None = None,
    refetch: bool = False,
    full: bool = False,
    config_file: str | None = None,
) -> dict[str, Any] | State:
    """Scheduled job: land every article the site shows that the warehouse does not hold yet.

    Incremental by default (home page, feed, conditional requests, a small sweep); ``full``
    lists every category page.
    """
    settings = flow_settings(
        config_file,
        categories=categories,
        site=site,
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    return outcome(CrawlRun(settings, "crawl", refetch=refetch, full=full).crawl())


@flow(name="backfill", task_runner=TASK_RUNNER, log_prints=False)
def backfill(
    categories: list[str] | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    refetch: bool = False,
    reextract: bool = False,
    site: str | None = None,
    warehouse: str | None = None,
    rps: float | None = None,
    concurrency: int | None = None,
    config_file: str | None = None,
) -> dict[str, Any] | State:
    """Manual run over categories and a publication-date range.

    Idempotent (a second run lands nothing) and resumable (landed articles are skipped).
    ``reextract`` re-runs extraction over the stored raw pages instead of fetching.
    """
    if since and until and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")
    settings = flow_settings(
        config_file,
        categories=categories,
        site=site,
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    run = CrawlRun(settings, "backfill", refetch=refetch, full=True, since=since, until=until)
    return outcome(run.reextract() if reextract else run.crawl())
