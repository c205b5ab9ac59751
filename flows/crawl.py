"""The crawl and backfill flows: list → dedupe → fetch + extract (batched) → land → catalog."""

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from common.links import category_page_url, post_categories, post_date, slug_from_category_url
from common.records import (
    ArticleBatch,
    ArticleRef,
    Failure,
    FetchResult,
    LandedBatch,
    ListingBatch,
)
from flows.reports import publish_progress, publish_report, start_progress
from tasks.batches import check_site
from tasks.decoding import page_text
from tasks.extraction import EXTRACTOR
from tasks.listing import dedupe_refs, parse_home_groups
from tasks.planning import ListingCheck, overflowing_groups, stalest
from tasks.settings import MAX_CONCURRENCY, Settings, load_settings
from tasks.steps import (
    fetch_extract_land_task,
    list_pages_task,
    merge_delta_task,
    reextract_task,
    refresh_catalog_task,
)
from tasks.workers import release_memory, use_system_allocator, workers_in_use
from warehouse.landing import Lander
from warehouse.rawstore import iter_raw_pages
from warehouse.rows import listing_state_rows
from warehouse.state import Known, load_known, open_state
from warehouse.writer import ensure_layout, remove_stale_temp_files

Page = tuple[str, str, str | None]
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


@dataclass
class RunReport:
    """The counts a run ends with; printed by the CLI, landed in ``runs``, published to Prefect."""

    run_id: str
    flow: str
    site: str
    categories: list[str]
    warehouse: str
    mode: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    elapsed_s: float = 0.0
    categories_listed: int = 0
    pages_fetched: int = 0
    not_modified: int = 0
    refs_seen: int = 0
    new_articles: int = 0
    new_versions: int = 0
    unchanged: int = 0
    duplicates_skipped: int = 0
    out_of_range: int = 0
    retried: int = 0
    failures: int = 0
    failure_reasons: list[str] = field(default_factory=list)
    status: str = "running"

    def summary_row(self) -> dict[str, Any]:
        """The row of the ``runs`` table."""
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
            "not_modified": self.not_modified,
            "retried": self.retried,
            "extractor": EXTRACTOR,
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain data (ISO timestamps): the flow's result, the CLI summary, the Prefect report."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


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
    """One run's state: what was listed, queued and landed, and the counters."""

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
        self.refetch = refetch
        self.full = full or refetch or since is not None or until is not None
        self.since = since
        self.until = until
        self.root = settings.warehouse
        started = dt.datetime.now(dt.UTC)
        # sortable to the microsecond: the articles view breaks fetched_at ties on run_id (a
        # re-extraction keeps the stored page's fetched_at, and may start in the same second)
        run_id = f"{started:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        mode = "full" if self.full else "incremental"
        self.report = RunReport(
            run_id=run_id,
            flow=flow_name,
            site=settings.site,
            categories=list(settings.categories),
            warehouse=str(self.root),
            mode=mode,
            started_at=started,
        )
        use_system_allocator()  # what this process lands, it lands with less memory held
        self.lander = Lander(self.root, run_id)
        self.known = Known()
        self.listed: set[str] = set()
        self.queued: set[str] = set()
        self.run_categories: dict[str, set[str]] = defaultdict(set)
        self.category_pages: dict[str, str] = {}
        self.listing_rows: list[dict[str, Any]] = []
        self.listing_retries: list[Page] = []
        self._home_groups: list[tuple[str, list[ArticleRef]]] = []
        self.logger = get_run_logger()
        self._clock = time.monotonic()
        self._batches = itertools.count()  # file names must be unique across the whole run
        self._progress: Any = None

    def prepare(self, *, offline: bool = False) -> None:
        """Check the site answers before anything is written; then load the crawl state."""
        if not offline and _probed_site.get() != self.settings.site:
            check_site(self.settings)
        ensure_layout(self.root)
        remove_stale_temp_files(self.root)
        self.known = load_known(self.root)
        if not offline and self.settings.all_categories:
            self.listing_retries = [
                (url, "category", slug)
                for url in self.known.listing_retries
                if (slug := slug_from_category_url(url)) is not None
            ]
        if self.listing_retries:
            self.report.retried += len(self.listing_retries)
            self.logger.info(
                "listing again %d category page(s) whose last listing failed",
                len(self.listing_retries),
            )

    def crawl(self) -> RunReport:
        """List, dedupe, fetch, land; incremental unless ``full``."""
        self.prepare()
        if self.report.flow == "backfill":
            self._progress = start_progress()
        with workers_in_use():
            self._retry_pending()
            pages = self._first_pages()
            rounds = 0
            while pages:
                refs = self._list(pages, optional=rounds > 0)
                self._land_articles(self._select(refs))
                rounds += 1
                more = self.settings.all_categories and (self.full or rounds == 1)
                pages = self._next_pages(refs) if more else []
        return self._finish()

    def reextract(self) -> RunReport:
        """Re-extract stored raw pages with the current extractor; no request is made."""
        self.prepare(offline=True)
        self._progress = start_progress()
        batches = iter_raw_pages(
            self.root,
            categories=None if self.settings.all_categories else self.settings.categories,
            since=self.since,
            until=self.until,
            batch_size=self.settings.batch_size,
        )
        current = self._current_hashes()
        total = max(1, batches.total)
        with workers_in_use():
            self._reextract_batches(batches, current, total)
        return self._finish()

    def _reextract_batches(
        self, batches: Iterable[list[RawPage]], current: dict[str, str], total: int
    ) -> None:
        """Batches are task runs like a crawl's: a crashed one is recorded, the run goes on."""
        done = 0

        def submit(_: int, chunk: list[RawPage]) -> PrefectFuture[Any]:
            return reextract_task.submit(quote(self.settings), quote(chunk))

        for future, chunk in _bounded(batches, submit, self.settings.concurrency):
            batch: ArticleBatch | None = self._result(future, chunk, stage="reextract")
            done += len(chunk)
            if batch is not None:
                changed = [a for a in batch.articles if current.get(a.info_code) != a.content_hash]
                self.report.new_versions += len(changed)
                self.report.unchanged += len(batch.articles) - len(changed)
                self.lander.articles(changed, {})
                self._count_failures(batch.failures)
            publish_progress(self._progress, 100 * done / total)

    def _current_hashes(self) -> dict[str, str]:
        with open_state(self.root) as connection:
            return dict(
                connection.execute("SELECT info_code, content_hash FROM articles").fetchall()
            )

    def _finish(self) -> RunReport:
        report = self.report
        self.lander.listing_state_rows(self.listing_rows)
        report.finished_at = dt.datetime.now(dt.UTC)
        report.elapsed_s = round(time.monotonic() - self._clock, 3)
        report.status = "completed" if report.failures == 0 else "completed_with_failures"
        self.lander.run(report.summary_row())
        try:  # fewer files for readers until the next compaction; never fails a landed run
            merge_delta_task(self.root)
        except Exception as exc:
            self.logger.warning("delta merge skipped: %s: %s", type(exc).__name__, exc)
        refresh_catalog_task(self.root)
        publish_progress(self._progress, 100.0)
        publish_report(report.as_dict())
        return report

    def _first_pages(self) -> list[Page]:
        """Home page and feed (and category pages whose last listing failed), or the categories
        asked for."""
        site = self.settings.site
        if self.settings.all_categories:
            home = [(f"{site}/", "home", None), (f"{site}/feed.xml", "feed", None)]
            return home + self.listing_retries
        return [
            (category_page_url(site, slug), "category", slug) for slug in self.settings.categories
        ]

    def _retry_pending(self) -> None:
        """Pages of the retry queue are tried again first (not in a date-bounded backfill)."""
        if self.since or self.until:
            return
        refs = []
        for pending in self.known.retries:
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
            self._land_articles(self._select(refs, retry=True))

    def _validators(self, pages: Iterable[Page]) -> dict[str, tuple[str | None, str | None]]:
        if self.full:
            return {}
        return {
            url: (state.etag, state.last_modified)
            for url, _, _ in pages
            if (state := self.known.listings.get(url)) is not None
        }

    def _list(self, pages: list[Page], *, optional: bool) -> list[ArticleRef]:
        pages = [page for page in pages if page[0] not in self.listed]
        self.listed.update(page[0] for page in pages)
        categories = {url: category for url, _, category in pages}
        # Listing pages are big (a category page is ~0.25 MB): small batches, a bounded number
        # in flight, each dropped once read, so a full listing never sits in memory at once.
        chunks = _chunks(pages, LISTING_BATCH, self.settings.concurrency)
        validators = self._validators(pages)

        def submit(_: int, chunk: list[Page]) -> PrefectFuture[Any]:
            return list_pages_task.submit(
                quote(self.settings), quote(chunk), optional=optional, validators=quote(validators)
            )

        refs: list[ArticleRef] = []
        self._home_groups = []
        for future, chunk in _bounded(chunks, submit, self.settings.concurrency):
            batch: ListingBatch | None = self._result(future, chunk, stage="listing")
            release_memory()  # the previous pages' buffers, freed on the task threads' heaps
            if batch is None:
                continue
            self.lander.fetches(batch.fetches)
            self._count_failures(batch.failures)
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
                        self._home_groups = parse_home_groups(
                            page_text(result), result.final_url, self.settings.site
                        )
            refs.extend(batch.refs)
            self._note_sightings(batch.refs)  # landed per batch: no run-sized row list
        self.report.refs_seen += len(refs)
        release_memory()
        return refs

    def _note_sightings(self, refs: Iterable[ArticleRef]) -> None:
        """Remember each post's categories for this run; land the (post, category) pairs new."""
        new_sightings = []
        for ref in refs:
            if slug_from_category_url(ref.listed_on):
                self.run_categories[ref.info_code].add(ref.category)
                if (ref.info_code, ref.category) not in self.known.categorised:
                    self.known.categorised.add((ref.info_code, ref.category))
                    new_sightings.append(ref)
        self.lander.sightings(new_sightings)

    def _select(self, refs: list[ArticleRef], *, retry: bool = False) -> list[ArticleRef]:
        """Dedupe within the run and against the warehouse, before fetching anything."""
        unique, _ = dedupe_refs(refs)
        selected = []
        out_of_range = 0
        bounded = self.since is not None or self.until is not None
        for ref in unique:
            day = post_date(ref.url) if bounded else None
            if (self.since and day and day < self.since) or (
                self.until and day and day > self.until
            ):
                out_of_range += 1
                continue
            if ref.info_code in self.queued:
                continue
            if not self.refetch and self.known.has(ref.info_code, ref.url):
                continue
            if not retry and not self.refetch and ref.url in self.known.dead_urls:
                continue
            self.queued.add(ref.info_code)
            selected.append(ref)
        self.report.out_of_range += out_of_range
        if not retry:
            self.report.duplicates_skipped += len(refs) - len(selected) - out_of_range
        return selected

    def _land_articles(self, refs: list[ArticleRef]) -> None:
        """Batches go to the workers, at most two per worker slot in flight (bounded memory)."""
        chunks = _chunks(refs, self.settings.batch_size, self.settings.concurrency)
        done = 0

        def submit(_: int, chunk: list[ArticleRef]) -> PrefectFuture[Any]:
            categories = {
                ref.info_code: sorted(self.run_categories.get(ref.info_code, ())) for ref in chunk
            }
            return fetch_extract_land_task.submit(
                quote(self.settings),
                quote(chunk),
                self.report.run_id,
                f"b{next(self._batches):05d}",
                quote(categories),
            )

        for future, chunk in _bounded(chunks, submit, self.settings.concurrency):
            landed: LandedBatch | None = self._result(future, chunk, stage="fetch-extract")
            done += len(chunk)
            if landed is None:
                continue
            fresh = [code for code in landed.info_codes if code not in self.known.info_codes]
            self.report.new_articles += len(fresh)
            self.report.new_versions += len(landed.info_codes) - len(fresh)
            self._count_failures(landed.failures, landed=True)
            self.report.pages_fetched += landed.fetched
            self.category_pages.update(landed.category_pages)
            if self._progress is not None and refs:
                publish_progress(self._progress, min(99.0, 100 * done / len(refs)))

    def _category_page(self, refs: Sequence[ArticleRef]) -> Page | None:
        """The exact category page (a back-link of one of these posts) or one guessed from a URL.

        A guess is the URL's lower-cased path, so it misses slugs with capitals: exact links
        are preferred whenever any post of the group carries one.
        """
        for ref in refs:
            exact = self.category_pages.get(ref.url) or self.known.category_pages.get(ref.url)
            if exact:
                return (exact, "category", slug_from_category_url(exact))
        for ref in refs:
            cats = post_categories(ref.url)
            if cats and len(cats) == 1:
                return (category_page_url(self.settings.site, cats[0]), "category", cats[0])
        return None

    def _next_pages(self, refs: list[ArticleRef]) -> list[Page]:
        """Full runs list every category seen; incremental runs only those that may hold news."""
        pages: dict[str, Page] = {}
        if self.full:
            candidates: Iterable[Sequence[ArticleRef]] = [[ref] for ref in refs]
        else:
            groups = self._home_groups
            overflowing = overflowing_groups(
                groups, lambda ref: self.known.has(ref.info_code, ref.url)
            )
            candidates = [group for _, group in overflowing]
            checks = {
                url: ListingCheck(url, state.checked_at)
                for url, state in self.known.listings.items()
                if state.kind == "category"
            }
            for url in stalest(checks, self.settings.sweep_fraction, exclude=self.listed):
                state = self.known.listings[url]
                pages[url] = (url, "category", state.category)
            self._home_groups = []
        for group in candidates:
            page = self._category_page(group)
            if page is not None:
                pages.setdefault(page[0], page)
        return [page for url, page in pages.items() if url not in self.listed]

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
        """Count and log failures; land them unless the worker already did."""
        if not landed:
            self.lander.failures(failures)
        self.report.failures += len(failures)
        for failure in failures:
            if len(self.report.failure_reasons) < 20:
                self.report.failure_reasons.append(f"{failure.url}: {failure.reason}")
            self.logger.warning("failed %s (%s): %s", failure.url, failure.stage, failure.reason)


def flow_settings(config_file: str | None, **overrides: Any) -> Settings:
    """A flow's settings: its ``config_file`` parameter (a path, or None) and its overrides."""
    return load_settings(Path(config_file) if config_file else None, **overrides)


class PagesFailed(RuntimeError):
    """Some pages of a run failed; everything else landed. Carries the run's report."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(
            f"{report['failures']} page(s) failed (recorded in the failures table); "
            f"{report['new_articles']} new article(s) landed"
        )
        self.report = report


def _outcome(report: RunReport) -> dict[str, Any] | State:
    """Runs that lost pages end Failed (data landed, pages listed in the report), not Completed."""
    data = report.as_dict()
    if report.failures:
        error = PagesFailed(data)
        return Failed(message=str(error), data=error)
    return data


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
    return _outcome(CrawlRun(settings, "crawl", refetch=refetch, full=full).crawl())


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
    return _outcome(run.reextract() if reextract else run.crawl())
