"""The deployments' schedules, defined once: ``finews serve``'s defaults and the deployments.

Kept apart from ``flows.deployments`` so the command line can show them without importing
Prefect (prefect.yaml spells them too; ``tests/test_server.py`` checks it agrees).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.schedules import Schedule

TIMEZONE = "Asia/Shanghai"  # the site's time: "03:40" is 03:40 in Shanghai
CRAWL_CRON = "*/10 * * * *"
COMPACT_CRON = "40 3 * * *"


def cron_schedule(cron: str) -> Schedule:
    """A cron schedule in the site's timezone; ValueError when ``cron`` is not one."""
    from prefect.schedules import Cron

    return Cron(cron, timezone=TIMEZONE)
