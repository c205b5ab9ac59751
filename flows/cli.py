"""The ``finews`` command line: crawl, backfill, sql, demo.

Settings are validated before Prefect is even imported, so a bad value costs one line and
exit status 2, not a server start and a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from tasks.settings import Settings

USAGE_ERROR = 2


def _quiet_prefect() -> None:
    """Defaults for a local run: no telemetry (it logs ERRORs offline), readable logs."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def _fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    click.echo(f"finews: error: {message}", err=True)
    sys.exit(status)


def _load(config: Path | None, **overrides: Any) -> Settings:
    # Imported here, not at the top: worker processes are spawned and re-import the console
    # script's module, which then costs them click only, not pydantic-settings (~15 MB each).
    from tasks.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except SettingsError as exc:
        _fail(str(exc))
    _check_writable(settings.warehouse)
    return settings


def _check_writable(path: Path) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        _fail(f"setting 'warehouse': {path} is not a writable directory")


def _categories(values: tuple[str, ...]) -> list[str] | None:
    items = [part for value in values for part in value.split(",")]
    return items or None


site_option = click.option("--site", help="Base URL of the site (default from config).")
category_option = click.option(
    "--category", "categories", multiple=True, help="Category slug (repeatable), or 'all'."
)
warehouse_option = click.option(
    "--warehouse",
    type=click.Path(path_type=Path),
    help="Warehouse folder (default ./data/warehouse).",
)
config_option = click.option(
    "--config", type=click.Path(path_type=Path), help="Settings file (default config/finews.toml)."
)
rps_option = click.option(
    "--rps", type=float, help="Requests per second per host (0 = no limit, local replica only)."
)
concurrency_option = click.option("--concurrency", type=int, help="Worker threads.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finews")
def cli() -> None:
    """Capture finews.withounder.com into a Parquet warehouse queried with DuckDB."""


def _check_site(settings: Settings) -> None:
    from tasks.batches import SiteUnreachable, check_site

    try:
        check_site(settings)
    except SiteUnreachable as exc:
        _fail(str(exc))


def _run_flow(name: str, settings: Settings, **params: Any) -> dict[str, Any]:
    # Set before pyarrow is first imported (by the flows), when Arrow reads it; workers inherit
    # it. Why: tasks.workers.use_system_allocator.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if not params.get("reextract"):
        _check_site(settings)
    _quiet_prefect()
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows import crawl as flows_module
    from flows.runner import run_flow

    flow = getattr(flows_module, name).with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=settings.concurrency)
    )
    return run_flow(
        flow,
        categories=settings.categories,
        site=settings.site,
        warehouse=str(settings.warehouse),
        rps=settings.rps,
        concurrency=settings.concurrency,
        **params,
    )


def _finish(report: dict[str, Any]) -> NoReturn:
    from flows.output import format_summary

    click.echo(format_summary(report))
    sys.exit(0 if report["failures"] == 0 else 1)


@cli.command()
@site_option
@category_option
@warehouse_option
@config_option
@rps_option
@concurrency_option
@click.option("--refetch", is_flag=True, help="Fetch articles already in the warehouse again.")
@click.option(
    "--full", is_flag=True, help="List every category page instead of the incremental plan."
)
def crawl(
    site: str | None,
    categories: tuple[str, ...],
    warehouse: Path | None,
    config: Path | None,
    rps: float | None,
    concurrency: int | None,
    refetch: bool,
    full: bool,
) -> None:
    """Land new articles: incremental over the whole site by default, or the given categories."""
    settings = _load(
        config,
        site=site,
        categories=_categories(categories),
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    _finish(
        _run_flow(
            "crawl",
            settings,
            refetch=refetch,
            full=full,
            config_file=str(config) if config else None,
        )
    )


@cli.command()
@site_option
@category_option
@warehouse_option
@config_option
@rps_option
@concurrency_option
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="First publication day (YYYY-MM-DD)."
)
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), help="Last publication day (YYYY-MM-DD)."
)
@click.option("--reextract", is_flag=True, help="Re-extract stored raw pages instead of fetching.")
@click.option("--refetch", is_flag=True, help="Fetch articles already in the warehouse again.")
def backfill(
    site: str | None,
    categories: tuple[str, ...],
    warehouse: Path | None,
    config: Path | None,
    rps: float | None,
    concurrency: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    refetch: bool,
    reextract: bool,
) -> None:
    """Manual run over categories and a publication-date range (idempotent, resumable)."""
    if since and until and since > until:
        _fail(f"--since {since:%Y-%m-%d} is after --until {until:%Y-%m-%d}")
    settings = _load(
        config,
        site=site,
        categories=_categories(categories),
        warehouse=warehouse,
        rps=rps,
        concurrency=concurrency,
    )
    _finish(
        _run_flow(
            "backfill",
            settings,
            refetch=refetch,
            reextract=reextract,
            since=since.date() if since else None,
            until=until.date() if until else None,
            config_file=str(config) if config else None,
        )
    )


@cli.command()
@click.argument("query")
@warehouse_option
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def sql(query: str, warehouse: Path | None, config: Path | None, fmt: str) -> None:
    """Run one read-only SQL query against the warehouse catalog."""
    from flows.output import format_rows
    from warehouse.catalog import QueryRefused, run_query

    settings = _load(config, warehouse=warehouse)
    if not settings.warehouse.is_dir():
        _fail(f"no warehouse at {settings.warehouse}: run 'finews crawl' first or pass --warehouse")
    try:
        names, rows = run_query(settings.warehouse, query)
    except QueryRefused as exc:
        _fail(str(exc))
    click.echo(format_rows(names, rows, fmt))


@cli.command()
@site_option
@warehouse_option
@config_option
@rps_option
@click.option("--cron", default="*/10 * * * *", show_default=True, help="Crawl schedule.")
@click.option(
    "--compact-cron", default="40 3 * * *", show_default=True, help="Compaction schedule."
)
def serve(
    site: str | None,
    warehouse: Path | None,
    config: Path | None,
    rps: float | None,
    cron: str,
    compact_cron: str,
) -> None:
    """Register the crawl, backfill and compact deployments and run them in this process.

    Needs a Prefect server (PREFECT_API_URL); schedules use Asia/Shanghai time and stay
    active when this process stops.
    """
    settings = _load(config, site=site, warehouse=warehouse, rps=rps)
    _quiet_prefect()
    from flows.deployments import build_deployments, serve_deployments

    defaults = {
        "site": settings.site,
        "warehouse": str(settings.warehouse),
        "rps": settings.rps,
        "config_file": str(config.resolve()) if config else None,
    }
    try:
        deployments = build_deployments(
            defaults=defaults, crawl_cron=cron, compact_cron=compact_cron
        )
    except ValueError as exc:
        _fail(f"invalid schedule: {str(exc).splitlines()[0]}")
    serve_deployments(deployments)


@cli.command()
@warehouse_option
@config_option
def compact(warehouse: Path | None, config: Path | None) -> None:
    """Merge small Parquet files per partition and rebuild the current snapshot of articles."""
    settings = _load(config, warehouse=warehouse)
    _quiet_prefect()
    from flows.maintenance import compact as compact_flow
    from flows.runner import run_flow
    from warehouse.compaction import CompactionBusy

    try:
        report = run_flow(
            compact_flow,
            warehouse=str(settings.warehouse),
            config_file=str(config) if config else None,
        )
    except CompactionBusy as exc:
        _fail(str(exc), status=1)
    click.echo(report)


@cli.command()
@click.option(
    "--posts",
    type=click.IntRange(10, 100_000),
    default=400,
    show_default=True,
    help="Synthetic posts in the replica.",
)
@click.option(
    "--warehouse",
    type=click.Path(path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Where the demo warehouse goes (replaced each run).",
)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(posts: int, warehouse: Path, seed: int) -> None:
    """Serve a local replica of the site on loopback, crawl it, and query the result."""
    from flows.demo import run_demo

    sys.exit(run_demo(posts=posts, warehouse=warehouse, seed=seed, run_flow=_run_flow, load=_load))


def main() -> None:
    cli(prog_name="finews")


if __name__ == "__main__":
    main()
