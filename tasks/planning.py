"""Deciding which listing pages an incremental run must fetch, from cheap signals.

The home page shows the 5 newest posts of every outlet. If the oldest of those 5 was already
captured, every newer post of that outlet is on the home page itself, so its category page
cannot hold anything new. Only outlets whose 5 home posts are all new may have more: those
category pages are fetched. A small sweep of the least recently checked category pages (with
conditional requests) is a safety net against anything the signals missed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from common.records import ArticleRef

HOME_GROUP_SIZE = 5


@dataclass(frozen=True, slots=True)
class ListingCheck:
    """When a listing page was last seen, for picking the stalest ones."""

    url: str
    checked_at: dt.datetime


def overflowing_groups(
    groups: Iterable[tuple[str, list[ArticleRef]]],
    is_known: Callable[[ArticleRef], bool],
    group_size: int = HOME_GROUP_SIZE,
) -> list[tuple[str, list[ArticleRef]]]:
    """Home groups whose category page may list posts the home page does not show."""
    return [
        (tag, refs) for tag, refs in groups if len(refs) >= group_size and not is_known(refs[-1])
    ]


def stalest(checks: Mapping[str, ListingCheck], fraction: float, exclude: set[str]) -> list[str]:
    """The ``fraction`` of known category pages checked longest ago (at least one if any)."""
    candidates = sorted(
        (check for url, check in checks.items() if url not in exclude),
        key=lambda check: (check.checked_at, check.url),
    )
    if not candidates or fraction <= 0:
        return []
    count = max(1, math.ceil(len(checks) * fraction))
    return [check.url for check in candidates[:count]]
