"""Deployments as code: the scheduled crawl, the manual backfill and the daily compaction.

``finews serve`` registers them and executes their runs in one long-running process; the
same flows are deployed to a work pool with ``prefect deploy --all`` (see prefect.yaml).
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment

from flows.crawl import backfill, crawl
from flows.maintenance import compact
from flows.schedules import COMPACT_CRON, CRAWL_CRON, cron_schedule

# <flow>/<deployment>, as `prefect deployment run` names them
CRAWL_DEPLOYMENT = "crawl/scheduled"
BACKFILL_DEPLOYMENT = "backfill/manual"
COMPACT_DEPLOYMENT = "compact/daily"


def _one_at_a_time(strategy: ConcurrencyLimitStrategy) -> ConcurrencyLimitConfig:
    return ConcurrencyLimitConfig(limit=1, collision_strategy=strategy)


def build_deployments(
    *,
    defaults: dict[str, Any],
    crawl_cron: str = CRAWL_CRON,
    compact_cron: str = COMPACT_CRON,
) -> list[RunnerDeployment]:
    """``defaults`` (site, warehouse, config_file, …) become each deployment's parameters.

    A crawl that would overlap the previous one is cancelled (the next one picks up the work);
    compactions never overlap; backfills queue behind each other.
    """
    common = {key: value for key, value in defaults.items() if value is not None}
    return [
        crawl.to_deployment(
            name=CRAWL_DEPLOYMENT.partition("/")[2],
            schedules=[cron_schedule(crawl_cron)],
            parameters=common,
            concurrency_limit=_one_at_a_time(ConcurrencyLimitStrategy.CANCEL_NEW),
            description="Incremental crawl of the whole site (home page, feed, changed pages).",
            tags=["finews"],
        ),
        backfill.to_deployment(
            name=BACKFILL_DEPLOYMENT.partition("/")[2],
            parameters=common,
            concurrency_limit=_one_at_a_time(ConcurrencyLimitStrategy.ENQUEUE),
            description="Manual backfill: categories, since/until, refetch, reextract.",
            tags=["finews"],
        ),
        compact.to_deployment(
            name=COMPACT_DEPLOYMENT.partition("/")[2],
            schedules=[cron_schedule(compact_cron)],
            parameters={k: v for k, v in common.items() if k in ("warehouse", "config_file")},
            concurrency_limit=_one_at_a_time(ConcurrencyLimitStrategy.CANCEL_NEW),
            description="Merge small Parquet files per partition; rebuild the articles snapshot.",
            tags=["finews"],
        ),
    ]


def serve_deployments(deployments: list[RunnerDeployment], *, limit: int = 2) -> None:
    """Run until stopped; schedules stay active when this process stops (pause_on_shutdown off)."""
    from prefect import serve

    serve(*deployments, pause_on_shutdown=False, limit=limit, print_starting_message=True)
