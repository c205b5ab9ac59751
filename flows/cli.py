"""The ``finews`` command line: crawl, backfill, sql, serve, compact, demo.

Settings are validated before Prefect is even imported, so a bad value costs one line and
exit status 2, not a server start and a traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from flows.schedules import COMPACT_CRON, CRAWL_CRON, cron_schedule

if TYPE_CHECKING:
    from tasks.settings import Settings

USAGE_ERROR = 2
INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C (128 + SIGINT)


def _quiet_prefect() -> None:
    """Defaults for a local run: no telemetry (it logs ERRORs offline), readable logs."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def _error_line(message: str) -> None:
    click.echo(f"finews: error: {' '.join(message.splitlines())}", err=True)


def _fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    """Bad input ends here: one line saying what is wrong and what to do, no traceback."""
    _error_line(message)
    sys.exit(status)


class _OneLineError(click.ClickException):
    """A usage error of click's (a bad option value, an unknown option) as finews' one line."""

    exit_code = USAGE_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        _error_line(self.format_message())


# Plain `finews` shows the help; click 8.2+ does it by raising this usage error.
_SHOWS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """Click's usage errors become one line naming the command's --help."""
    try:
        yield
    except _SHOWS_HELP:
        raise
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        raise _OneLineError(f"{exc.format_message()}{hint}") from None


class _Group(click.Group):
    """The ``finews`` group: usage errors, its own or its commands', are one line, exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _one_line_usage_errors():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            # Ctrl-C also stopped Prefect's temporary server, if the run used one: the logs
            # still queued for it are dropped quietly rather than reported as errors after this.
            logging.raiseExceptions = False
            _fail(
                "interrupted: what landed is kept; the next run fetches the rest",
                status=INTERRUPTED,
            )


def _load(config: Path | None, *, read_only: bool = False, **overrides: Any) -> Settings:
    """Validated settings; a warehouse the command will write to must be writable."""
    # Imported here, not at the top: worker processes are spawned and re-import the console
    # script's module, which then costs them click only, not pydantic-settings (~15 MB each).
    from tasks.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except SettingsError as exc:
        _fail(str(exc))
    if not read_only:
        _check_writable(settings.warehouse)
    _check_extensions()
    return settings


def _check_extensions() -> None:
    """The lake's DuckDB extensions come from their wheels: a missing one costs one line."""
    from warehouse.lake import EXTENSIONS, LakeError, extension_file

    try:
        for name in EXTENSIONS:
            extension_file(name)
    except LakeError as exc:
        _fail(str(exc))


def _check_writable(path: Path) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        _fail(f"setting 'warehouse': {path} is not a writable directory")


def _existing_warehouse(path: Path) -> None:
    """Commands that read or rework a warehouse refuse a folder without one (none is created)."""
    from warehouse.lake import is_lake

    if not is_lake(path):
        _fail(f"no warehouse at {path}: run 'finews crawl' first or pass --warehouse")


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
    help="Warehouse folder (default: the 'warehouse' setting, ./data/warehouse unless the "
    "settings file or FINEWS_WAREHOUSE says otherwise).",
)
config_option = click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Settings file (default: $FINEWS_CONFIG, else config/finews.toml of the checkout).",
)
rps_option = click.option(
    "--rps", type=float, help="Requests per second per host (0 = no limit, local replica only)."
)
concurrency_option = click.option(
    "--concurrency", type=int, help="Batch task runs at once (listing and fetch + extract)."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finews")
def cli() -> None:
    """Capture finews.withounder.com into a Parquet warehouse queried with DuckDB."""


def _cron(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A schedule option is checked as it is parsed, so its error names the option."""
    try:
        cron_schedule(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc).splitlines()[0], ctx, param) from None
    return value


def _check_site(settings: Settings) -> None:
    from tasks.batches import SiteUnreachable, check_site

    try:
        check_site(settings)
    except SiteUnreachable as exc:
        _fail(str(exc))


def _run_flow(name: str, settings: Settings, **params: Any) -> dict[str, Any]:
    """Run a flow in this process with these settings, as a deployment's run would call it.

    The site is probed here, before Prefect starts, so a wrong ``--site`` costs one line; the
    run does not probe it again.
    """
    # Set before pyarrow is first imported (by the flows), when Arrow reads it; workers inherit
    # it. Why: tasks.workers.use_system_allocator.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if not params.get("reextract"):
        _check_site(settings)
    _quiet_prefect()
    from flows import crawl as flows_module
    from flows.runner import run_flow

    with flows_module.site_probed(settings.site):
        return run_flow(
            getattr(flows_module, name),
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
    if reextract:
        _existing_warehouse(settings.warehouse)  # nothing to re-extract, nothing to create
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
@click.option(
    "--as-of",
    "as_of",
    metavar="RUN_ID",
    help="Answer as of the end of that run (its snapshot; time travel reaches back "
    "'retention' days).",
)
def sql(
    query: str, warehouse: Path | None, config: Path | None, fmt: str, as_of: str | None
) -> None:
    """Run one read-only SQL query against the warehouse (the lake, attached read-only)."""
    from flows.output import format_rows
    from warehouse.query import QueryRefused, run_query

    settings = _load(config, read_only=True, warehouse=warehouse)
    _existing_warehouse(settings.warehouse)
    try:
        names, rows = run_query(settings.warehouse, query, as_of=as_of)
    except QueryRefused as exc:
        _fail(str(exc))
    click.echo(format_rows(names, rows, fmt))


@cli.command()
@site_option
@warehouse_option
@config_option
@rps_option
@click.option(
    "--cron", default=CRAWL_CRON, show_default=True, callback=_cron, help="Crawl schedule."
)
@click.option(
    "--compact-cron",
    default=COMPACT_CRON,
    show_default=True,
    callback=_cron,
    help="Compaction schedule.",
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
    serve_deployments(
        build_deployments(defaults=defaults, crawl_cron=cron, compact_cron=compact_cron)
    )


@cli.command()
@warehouse_option
@config_option
def compact(warehouse: Path | None, config: Path | None) -> None:
    """Merge small files, expire snapshots older than 'retention' days, delete unused files."""
    settings = _load(config, warehouse=warehouse)
    _existing_warehouse(settings.warehouse)
    _quiet_prefect()
    from flows.maintenance import compact as compact_flow
    from flows.output import format_compaction
    from flows.runner import run_flow

    report = run_flow(
        compact_flow,
        warehouse=str(settings.warehouse),
        config_file=str(config) if config else None,
    )
    click.echo(format_compaction(report, settings.warehouse))


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
