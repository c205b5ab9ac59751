"""``finews demo``: the whole pipeline offline, against a replica served on loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flows.output import format_rows, format_summary
from replica.posts import generate_posts
from replica.render import render_site
from replica.server import ReplicaServer
from warehouse.query import run_query

DEMO_MARKER = ".finews-demo"
SAMPLE_QUERIES = {
    "Articles per category (top 8)": (
        "SELECT category, count(*) AS articles, min(published_at) AS first, "
        "max(published_at) AS last FROM articles GROUP BY category ORDER BY articles DESC, "
        "category LIMIT 8"
    ),
    "Newest three articles": (
        "SELECT info_code, published_at, source, title, left(body, 40) AS body_start "
        "FROM articles ORDER BY published_at DESC, info_code LIMIT 3"
    ),
    "Stories listed in more than one category": (
        "SELECT info_code, info_code_raw, categories FROM articles "
        "WHERE len(categories) > 1 ORDER BY info_code LIMIT 5"
    ),
}


def _fresh(warehouse: Path) -> Path:
    """Replace a previous demo warehouse, but never a folder the demo did not create."""
    warehouse = warehouse.resolve()
    if warehouse.exists() and not warehouse.is_dir():
        raise click.UsageError(f"{warehouse} is not a folder; pick another --warehouse")
    if warehouse.exists() and not (warehouse / DEMO_MARKER).exists() and any(warehouse.iterdir()):
        raise click.UsageError(
            f"{warehouse} exists and is not a demo warehouse; pick another --warehouse"
        )
    try:
        if warehouse.exists():
            shutil.rmtree(warehouse)
        warehouse.mkdir(parents=True)
        (warehouse / DEMO_MARKER).write_text("created by finews demo; replaced on every demo run\n")
    except OSError as exc:
        raise click.UsageError(
            f"cannot create the demo warehouse at {warehouse} ({exc.strerror or exc}); "
            "pick another --warehouse"
        ) from None
    return warehouse


def run_demo(
    *,
    posts: int,
    warehouse: Path,
    seed: int,
    run_flow: Callable[..., dict[str, Any]],
    load: Callable[..., Any],
) -> int:
    """Crawl a fresh replica twice into a fresh demo warehouse, then query it.

    ``run_flow`` and ``load`` are the command line's, so the demo runs exactly as ``finews
    crawl`` does. Status 0 when the first run had no failure and the second landed nothing.
    """
    warehouse = _fresh(warehouse)
    site = render_site(generate_posts(posts, seed=seed))
    with ReplicaServer(site) as server:
        click.echo(
            f"replica of the site with {posts} posts serving on {server.base_url} (loopback only)"
        )
        settings = load(None, site=server.base_url, categories=["all"], warehouse=warehouse, rps=0)
        report = run_flow("crawl", settings, refetch=False, config_file=None)
        click.echo(format_summary(report))
        click.echo("\nSecond run (nothing new should land):")
        again = run_flow("crawl", settings, refetch=False, config_file=None)
        click.echo(
            f"  new articles {again['new_articles']}, "
            f"duplicates skipped {again['duplicates_skipped']}, "
            f"pages fetched {again['pages_fetched']}"
        )
    for title, query in SAMPLE_QUERIES.items():
        click.echo(f'\n{title}:\n  finews sql "{query}" --warehouse {warehouse}')
        names, rows = run_query(warehouse, query)
        click.echo(format_rows(names, rows, "table"))
    click.echo(f"\nWarehouse: {warehouse}")
    click.echo(
        "Open it in DuckDB: ATTACH "
        f"'ducklake:sqlite:{warehouse / 'catalog.sqlite'}' AS finews (READ_ONLY); USE finews;"
        "  (articles, article_versions, sightings, fetch_log, failures, retry_queue, "
        "dead_pages, runs, raw_pages, listing_state, listing_retry_queue)"
    )
    return 0 if report["failures"] == 0 and again["new_articles"] == 0 else 1
