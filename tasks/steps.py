"""Thin Prefect task wrappers around the plain batch steps (the only Prefect import in tasks/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prefect import task
from prefect.cache_policies import NONE

from common.records import ArticleBatch, ArticleRef, FetchResult, ListingBatch
from tasks.batches import RunStopped, fetch_extract_on_worker, list_pages, reextract_pages
from tasks.settings import Settings


@task(name="list-pages", cache_policy=NONE, persist_result=False)
def list_pages_task(
    settings: Settings,
    pages: Sequence[tuple[str, str, str | None]],
    optional: bool = False,
    validators: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> ListingBatch:
    return list_pages(settings, pages, optional=optional, validators=validators)


@task(name="fetch-extract", cache_policy=NONE, persist_result=False)
def fetch_extract_task(settings: Settings, refs: Sequence[ArticleRef]) -> ArticleBatch | None:
    """None when the run is being stopped (Ctrl-C): nothing of the batch is kept, quietly."""
    try:
        return fetch_extract_on_worker(settings, refs)
    except RunStopped:
        return None


@task(name="reextract", cache_policy=NONE, persist_result=False)
def reextract_task(
    settings: Settings, pages: Sequence[tuple[ArticleRef, FetchResult]]
) -> ArticleBatch | None:
    """None when the run is being stopped (Ctrl-C): nothing was re-extracted, quietly."""
    try:
        return reextract_pages(settings, pages)
    except RunStopped:
        return None
