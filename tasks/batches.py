"""The batch steps: fetch listing pages into references, fetch posts into articles.

Each works on a batch so one Prefect task run covers many pages, and each catches per-page
errors so one bad page becomes a recorded Failure instead of losing the batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, CancelledError
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from common.links import slug_from_category_url
from common.records import (
    Article,
    ArticleBatch,
    ArticleRef,
    Failure,
    FetchResult,
    ListingBatch,
)
from tasks.decoding import decode_html, page_text
from tasks.extraction import ExtractionError, extract_article
from tasks.fetching import Fetcher
from tasks.listing import parse_feed, parse_listing
from tasks.ratelimit import SharedHostRateLimiter
from tasks.workers import discard_pool, extraction_pool, run_on_worker, stopping

if TYPE_CHECKING:
    from tasks.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What the batch steps read of :class:`~tasks.settings.Settings`, as plain data.

    Batches cross to worker processes with these, not with ``Settings``: unpickling a
    pydantic-settings model would import pydantic and pydantic-settings in every worker (~20 MB
    of memory each) for values that are only read. Also the key of the per-process Fetchers.
    """

    site: str
    site_netloc: str
    warehouse: Path
    rps: float
    user_agent: str
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    retries: int
    backoff_base: float
    backoff_max: float
    concurrency: int

    @classmethod
    def of(cls, settings: Settings | WorkerSettings) -> WorkerSettings:
        if isinstance(settings, WorkerSettings):
            return settings
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


_fetchers: dict[WorkerSettings, Fetcher] = {}
_fetchers_lock = threading.Lock()


def _new_fetcher(
    settings: Settings | WorkerSettings,
    *,
    limiter: SharedHostRateLimiter | None = None,
    retries: int | None = None,
    pool_size: int | None = None,
) -> Fetcher:
    return Fetcher(
        allowed_hosts=[settings.site_netloc],
        rps=settings.rps,
        user_agent=settings.user_agent,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_bytes=settings.max_response_bytes,
        retries=settings.retries if retries is None else retries,
        backoff_base=settings.backoff_base,
        backoff_max=settings.backoff_max,
        pool_size=pool_size or max(8, settings.concurrency * 2),
        limiter=limiter,
    )


def fetcher_for(settings: Settings | WorkerSettings) -> Fetcher:
    """One pooled Fetcher per process and settings, shared by every worker thread.

    With a rate limit, the schedule lives in the warehouse's state folder so every process
    crawling into it (extraction workers, overlapping runs) shares one per-host limit.
    """
    key = WorkerSettings.of(settings)
    with _fetchers_lock:
        if key not in _fetchers:
            limiter = (
                SharedHostRateLimiter(settings.rps, settings.warehouse / ".state" / "ratelimit")
                if settings.rps > 0
                else None
            )
            _fetchers[key] = _new_fetcher(key, limiter=limiter)
        return _fetchers[key]


class RunStopped(Exception):
    """The run was interrupted (or failed) while this batch waited or ran: nothing of it has
    landed, and its pages are fetched by the next run. Not a failure of the batch's pages."""


class SiteUnreachable(ValueError):
    """The configured site does not answer at all: a configuration problem, not a page fault."""


def check_site(settings: Settings) -> None:
    """Raise SiteUnreachable unless the site answers (any HTTP status will do).

    Asks for ``/robots.txt``, as a polite crawler would; nothing is written anywhere, so a
    wrong ``--site`` or a dead network costs one line, not a run full of failures.
    """
    probe = _new_fetcher(settings, retries=min(settings.retries, 1), pool_size=1)
    with probe:
        result = probe.fetch(f"{settings.site}/robots.txt")
    if result.status is None:
        raise SiteUnreachable(
            f"site {settings.site} is unreachable ({result.error}); check --site and the network"
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _failure(
    url: str,
    code: str | None,
    stage: str,
    result: FetchResult | None,
    reason: str,
    *,
    transient: bool = False,
    category: str | None = None,
) -> Failure:
    return Failure(
        url=url,
        info_code=code,
        stage=stage,
        reason=reason,
        status=result.status if result is not None else None,
        failed_at=_now(),
        transient=transient,
        category=category,
    )


def _fetch_failure(
    url: str, code: str | None, stage: str, result: FetchResult, category: str | None = None
) -> Failure:
    reason = result.error or f"http {result.status}"
    return _failure(url, code, stage, result, reason, transient=result.transient, category=category)


def _is_html(content_type: str | None) -> bool:
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml", "text/plain", "")


def list_pages(
    settings: Settings,
    pages: Sequence[tuple[str, str, str | None]],
    *,
    optional: bool = False,
    validators: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> ListingBatch:
    """Fetch listing pages, given as (url, kind, category) with kind in home/feed/category.

    ``optional`` pages are guesses (a category page inferred from a post URL): a 404 there
    is not a failure (the fetch log keeps it). ``validators`` (url -> (etag, last_modified)) make
    the requests conditional: a 304 means nothing changed since that page was last listed.
    """
    fetcher = fetcher_for(settings)
    validators = validators or {}
    refs: list[ArticleRef] = []
    fetches: list[tuple[str, FetchResult]] = []
    failures: list[Failure] = []
    for url, kind, category in pages:
        etag, last_modified = validators.get(url, (None, None))
        result = fetcher.fetch(url, etag=etag, last_modified=last_modified)
        fetches.append((kind, result))
        if result.not_modified:
            continue
        if not result.ok:
            if not (optional and result.status == 404):
                failures.append(_fetch_failure(url, None, kind, result))
            continue
        try:
            text = page_text(result)
            if kind == "feed":
                found = parse_feed(text, result.final_url, settings.site)
            else:
                slug = category if category is not None else slug_from_category_url(url)
                found = parse_listing(
                    text, result.final_url, settings.site, slug if kind == "category" else None
                )
        except Exception as exc:  # one unparsable page must not lose the batch
            failures.append(_failure(url, None, kind, result, f"unparsable listing: {exc}"))
            continue
        refs.extend(found)
    return ListingBatch(tuple(refs), tuple(fetches), tuple(failures))


def fetch_extract_on_worker(settings: Settings, refs: Sequence[ArticleRef]) -> ArticleBatch:
    """Fetch and extract a batch on a worker process (every core); the caller lands it.

    Workers stay lean: they never import pyarrow (~30 MB each), and the batch's bodies and
    raw pages come back once, to be landed as soon as they arrive and dropped, so the
    orchestrating process holds a few batches at most, never the crawl.
    """
    return _on_worker(settings, fetch_and_extract, WorkerSettings.of(settings), list(refs))


def fetch_and_extract(
    settings: Settings | WorkerSettings, refs: Sequence[ArticleRef]
) -> ArticleBatch:
    """Fetch each referenced post and extract it: every page ends as an Article or a Failure."""
    fetcher = fetcher_for(settings)
    fetches: list[tuple[str, FetchResult]] = []
    failures: list[Failure] = []
    raw_pages: list[tuple[ArticleRef, FetchResult]] = []
    articles: list[Article] = []
    for ref in refs:
        result = fetcher.fetch(ref.url)
        fetches.append(("article", result))
        if not result.ok:
            failures.append(_fetch_failure(ref.url, ref.info_code, "fetch", result, ref.category))
            continue
        if not _is_html(result.content_type):
            reason = f"not an HTML page: {result.content_type}"
            failures.append(
                _failure(ref.url, ref.info_code, "fetch", result, reason, category=ref.category)
            )
            continue
        outcome = _extract(settings, ref, result, stage="extract")
        if isinstance(outcome, Failure):
            failures.append(outcome)
            raw_pages.append((ref, result))
            continue
        articles.append(outcome)
        # stored under the category the article landed with, which --reextract filters on
        raw_pages.append((replace(ref, category=outcome.category), result))
    return ArticleBatch(tuple(articles), tuple(fetches), tuple(failures), tuple(raw_pages))


def reextract_pages(
    settings: Settings, pages: Sequence[tuple[ArticleRef, FetchResult]]
) -> ArticleBatch:
    """Extract stored raw pages again (new extractor version) on a worker, without requests."""
    return _on_worker(settings, _reextract, WorkerSettings.of(settings), list(pages))


def _reextract(
    settings: WorkerSettings, pages: Sequence[tuple[ArticleRef, FetchResult]]
) -> ArticleBatch:
    articles: list[Article] = []
    failures: list[Failure] = []
    for ref, result in pages:
        outcome = _extract(settings, ref, result, stage="reextract")
        if isinstance(outcome, Failure):
            failures.append(outcome)
        else:
            articles.append(outcome)
    return ArticleBatch(tuple(articles), (), tuple(failures))


def _extract(
    settings: Settings | WorkerSettings, ref: ArticleRef, result: FetchResult, *, stage: str
) -> Article | Failure:
    """One fetched (or stored) page to an Article, or the Failure saying why not; an extractor
    bug on one page is recorded like any failure, never raised."""
    try:
        page = decode_html(result.content, result.content_type)
        article = extract_article(
            page,
            result.final_url,
            fetched_at=result.fetched_at,
            category=ref.category,
            site=settings.site,
        )
    except ExtractionError as exc:
        reason = str(exc) or "no article"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        return _exact_category(ref, article)
    return _failure(ref.url, ref.info_code, stage, result, reason, category=ref.category)


def _exact_category(ref: ArticleRef, article: Article) -> Article:
    """A post not found on its category page (home page, feed, a stored raw page) carries the
    category guessed from its URL path, lower-cased; its back-link names the exact one."""
    if slug_from_category_url(ref.listed_on) is None and article.category_page:
        exact = slug_from_category_url(article.category_page)
        if exact:
            return replace(article, category=exact)
    return article


def _on_worker(settings: Settings, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the shared worker pool.

    A worker that dies (killed, out of memory) breaks every batch in flight on its pool, not
    just its own: each goes once more on a fresh pool, so only a batch whose worker dies twice
    fails. While the run is being stopped (Ctrl-C, see ``workers_in_use``) none goes again:
    ``RunStopped``.
    """
    for attempt in range(2):
        pool = extraction_pool(settings.extract_workers)
        try:
            return pool.submit(run_on_worker, fn, *args).result()
        except (BrokenExecutor, CancelledError):  # cancelled: queued on a pool discarded since
            discard_pool(settings.extract_workers, pool)
            if stopping():
                raise RunStopped from None
            if attempt:
                raise
    raise AssertionError("unreachable")
