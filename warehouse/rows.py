"""Records to warehouse rows: the one place that knows how a record maps onto a table."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from common.links import slug_from_category_url
from common.records import Article, ArticleRef, Failure, FetchResult


def article_rows(
    articles: Iterable[Article], categories: Mapping[str, Iterable[str]], run_id: str
) -> list[dict[str, Any]]:
    rows = []
    for article in articles:
        cats = sorted({article.category, *categories.get(article.info_code, ())})
        rows.append(
            {
                "info_code": article.info_code,
                "info_code_raw": article.info_code_raw,
                "url": article.url,
                "category": article.category,
                "categories": cats,
                "title": article.title,
                "published_at": article.published_at,
                "published_at_source": article.published_at_source,
                "source": article.source,
                "digest": article.digest,
                "body": article.body,
                "source_url": article.source_url,
                "content_hash": article.content_hash,
                "fetched_at": article.fetched_at,
                "run_id": run_id,
                "extractor": article.extractor,
                "extraction_path": article.extraction_path,
                "category_page": article.category_page,
                "tags": list(article.tags),
            }
        )
    return rows


def sighting_rows(
    refs: Iterable[ArticleRef], seen_at: dt.datetime, run_id: str
) -> list[dict[str, Any]]:
    """Category is kept only when the listing was that category's own page (exact slug)."""
    return [
        {
            "info_code": ref.info_code,
            "info_code_raw": ref.info_code_raw,
            "url": ref.url,
            "category": ref.category if slug_from_category_url(ref.listed_on) else None,
            "listed_on": ref.listed_on,
            "seen_at": seen_at,
            "run_id": run_id,
        }
        for ref in refs
    ]


def fetch_rows(fetches: Iterable[tuple[str, FetchResult]], run_id: str) -> list[dict[str, Any]]:
    return [
        {
            "url": result.url,
            "final_url": result.final_url,
            "kind": kind,
            "status": result.status,
            "bytes": len(result.content),
            "elapsed_s": result.elapsed_s,
            "attempts": result.attempts,
            "error": result.error,
            "fetched_at": result.fetched_at,
            "run_id": run_id,
        }
        for kind, result in fetches
    ]


def failure_rows(failures: Iterable[Failure], run_id: str) -> list[dict[str, Any]]:
    return [
        {
            "url": failure.url,
            "info_code": failure.info_code,
            "stage": failure.stage,
            "reason": failure.reason,
            "status": failure.status,
            "failed_at": failure.failed_at,
            "run_id": run_id,
            "transient": failure.transient,
            "category": failure.category,
        }
        for failure in failures
    ]


def raw_page_rows(
    pages: Iterable[tuple[ArticleRef, FetchResult]], run_id: str
) -> list[dict[str, Any]]:
    """The bytes as fetched, so a later extractor can re-extract without refetching."""
    return [
        {
            "info_code": ref.info_code,
            "info_code_raw": ref.info_code_raw,
            "url": ref.url,
            "final_url": result.final_url,
            "category": ref.category,
            "content_type": result.content_type,
            "content": result.content,
            "fetched_at": result.fetched_at,
            "run_id": run_id,
        }
        for ref, result in pages
    ]


def listing_state_rows(
    pages: Iterable[tuple[str, str | None, FetchResult, int]], run_id: str
) -> list[dict[str, Any]]:
    """(kind, category, result, refs found) of each listing page fetched successfully."""
    return [
        {
            "url": result.url,
            "kind": kind,
            "category": category,
            "status": result.status,
            "etag": result.etag,
            "last_modified": result.last_modified,
            "content_hash": hashlib.sha256(result.content).hexdigest() if result.content else None,
            "refs": refs,
            "checked_at": result.fetched_at,
            "run_id": run_id,
        }
        for kind, category, result, refs in pages
    ]
