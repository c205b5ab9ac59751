"""A rolling window over a pool of posts: what the site shows at a given moment.

The real site keeps about three days of posts and is rebuilt every few minutes; stepping a
``Timeline`` forward and serving ``site_at(t)`` reproduces that (new posts appear, old ones
disappear) for simulations of scheduled runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from replica.posts import Post
from replica.render import render_site


@dataclass(frozen=True)
class Timeline:
    posts: Sequence[Post]
    window: timedelta = timedelta(days=3)

    def live(self, at: datetime) -> list[Post]:
        """Posts published in (at - window, at]: what the site lists at ``at``."""
        return [p for p in self.posts if at - self.window < p.published_at <= at]

    def site_at(
        self, at: datetime, *, base_url: str = "https://finews.withounder.com"
    ) -> dict[str, bytes]:
        return render_site(self.live(at), base_url=base_url)
