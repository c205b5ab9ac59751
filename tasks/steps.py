"""Thin Prefect task wrappers around the plain batch steps (the only Prefect import in tasks/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from common.records import ArticleBatch, ArticleRef, FetchResult, LandedBatch, ListingBatch
from tasks.batches import RunStopped, fetch_extract_land, list_pages, reextract_pages
from tasks.settings import Settings


@task(name="list-pages", cache_policy=NONE, persist_result=False)
def list_pages_task(
    settings: Settings,
    pages: Sequence[tuple[str, str, str | None]],
    optional: bool = False,
    validators: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> ListingBatch:
    return list_pages(settings, pages, optional=optional, validators=validators)


@task(name="fetch-extract-land", cache_policy=NONE, persist_result=False)
def fetch_extract_land_task(
    settings: Settings,
    refs: Sequence[ArticleRef],
    run_id: str,
    tag: str,
    categories: Mapping[str, Sequence[str]],
) -> LandedBatch | None:
    """None when the run is being stopped (Ctrl-C): the batch did not land, quietly."""
    try:
        return fetch_extract_land(settings, refs, run_id=run_id, tag=tag, categories=categories)
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


@task(name="merge-delta", cache_policy=NONE, persist_result=False)
def merge_delta_task(root: Path) -> int:
    """Files merged away (0 when a compaction holds the lock: it settles the delta itself)."""
    from warehouse.compaction import CompactionBusy, merge_delta

    try:
        report = merge_delta(root)
    except CompactionBusy:
        return 0
    return report.files_before - report.files_after


@task(name="refresh-catalog", cache_policy=NONE, persist_result=False)
def refresh_catalog_task(root: Path) -> Path:
    from warehouse.catalog import refresh_catalog

    return refresh_catalog(root)
