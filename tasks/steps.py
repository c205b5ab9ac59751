"""Thin Prefect task wrappers around the plain batch steps (the only Prefect import in tasks/)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.batches import fetch_articles, list_pages
from tasks.records import ArticleBatch, ArticleRef, ListingBatch
from tasks.settings import Settings


@task(name="list-pages", cache_policy=NONE, persist_result=False)
def list_pages_task(
    settings: Settings, pages: Sequence[tuple[str, str, str | None]], optional: bool = False
) -> ListingBatch:
    return list_pages(settings, pages, optional=optional)


@task(name="fetch-extract", cache_policy=NONE, persist_result=False)
def fetch_articles_task(settings: Settings, refs: Sequence[ArticleRef]) -> ArticleBatch:
    return fetch_articles(settings, refs)


@task(name="refresh-catalog", cache_policy=NONE, persist_result=False)
def refresh_catalog_task(root: Path) -> Path:
    from warehouse.catalog import refresh_catalog

    return refresh_catalog(root)
