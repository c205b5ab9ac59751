"""The batch steps: fetch listing pages into references, fetch posts into articles.

Each works on a batch so one Prefect task run covers many pages, and each catches per-page
errors so one bad page becomes a recorded Failure instead of losing the batch.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import replace

from tasks.extraction import ExtractionError, extract_article
from tasks.fetching import Fetcher
from tasks.links import slug_from_category_url
from tasks.listing import parse_feed, parse_listing
from tasks.records import Article, ArticleBatch, ArticleRef, Failure, FetchResult, ListingBatch
from tasks.settings import Settings

_fetchers: dict[str, Fetcher] = {}
_fetchers_lock = threading.Lock()


def fetcher_for(settings: Settings) -> Fetcher:
    """One pooled Fetcher per process and settings, shared by every worker thread."""
    key = settings.model_dump_json()
    with _fetchers_lock:
        if key not in _fetchers:
            _fetchers[key] = Fetcher(
                allowed_hosts=[settings.site_netloc],
                rps=settings.rps,
                user_agent=settings.user_agent,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                max_bytes=settings.max_response_bytes,
                retries=settings.retries,
                backoff_base=settings.backoff_base,
                backoff_max=settings.backoff_max,
                pool_size=max(8, settings.concurrency * 2),
            )
        return _fetchers[key]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _failure(
    url: str, code: str | None, stage: str, result: FetchResult | None, reason: str
) -> Failure:
    return Failure(
        url=url,
        info_code=code,
        stage=stage,
        reason=reason,
        status=result.status if result is not None else None,
        failed_at=_now(),
    )


def list_pages(
    settings: Settings, pages: Sequence[tuple[str, str, str | None]], *, optional: bool = False
) -> ListingBatch:
    """Fetch listing pages, given as (url, kind, category) with kind in home/feed/category.

    ``optional`` pages are guesses (a category page inferred from a post URL): a 404 there
    is noted as missing, not as a failure.
    """
    fetcher = fetcher_for(settings)
    refs: list[ArticleRef] = []
    fetches: list[tuple[str, FetchResult]] = []
    failures: list[Failure] = []
    missing: list[str] = []
    for url, kind, category in pages:
        result = fetcher.fetch(url)
        fetches.append((kind, result))
        if not result.ok:
            if optional and result.status == 404:
                missing.append(url)
            else:
                failures.append(
                    _failure(url, None, kind, result, result.error or f"http {result.status}")
                )
            continue
        try:
            text = result.text()
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
    return ListingBatch(tuple(refs), tuple(fetches), tuple(failures), tuple(missing))


def fetch_articles(settings: Settings, refs: Sequence[ArticleRef]) -> ArticleBatch:
    """Fetch and extract each referenced post; every page ends as an Article or a Failure."""
    fetcher = fetcher_for(settings)
    articles: list[Article] = []
    fetches: list[tuple[str, FetchResult]] = []
    failures: list[Failure] = []
    for ref in refs:
        result = fetcher.fetch(ref.url)
        fetches.append(("article", result))
        if not result.ok:
            failures.append(
                _failure(
                    ref.url, ref.info_code, "fetch", result, result.error or f"http {result.status}"
                )
            )
            continue
        try:
            article = extract_article(
                result.text(),
                result.final_url,
                fetched_at=result.fetched_at,
                category=ref.category,
                site=settings.site,
            )
        except ExtractionError as exc:
            failures.append(_failure(ref.url, ref.info_code, "extract", result, str(exc)))
            continue
        except Exception as exc:  # an extractor bug on one page is recorded, not fatal
            failures.append(
                _failure(ref.url, ref.info_code, "extract", result, f"{type(exc).__name__}: {exc}")
            )
            continue
        if slug_from_category_url(ref.listed_on) is None and article.category_page:
            exact = slug_from_category_url(article.category_page)
            if exact:
                article = replace(article, category=exact)
        articles.append(article)
    return ArticleBatch(tuple(articles), tuple(fetches), tuple(failures))
