"""Benchmark: requests per scheduled run over a rolling-window simulation, vs the naive crawl.

The replica moves through a timeline (posts appear, posts older than the window disappear,
the site is rebuilt before every run); an incremental `crawl` runs after each step. The naive
approach fetches the home page and every live category page on every run. Run:

    .venv/bin/python tests/bench_rolling.py --posts 3000 --categories 200 --hours 72 --step 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.crawl import crawl
from flows.runner import run_flow
from replica.posts import generate_posts
from replica.server import ReplicaServer
from replica.timeline import Timeline

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _listed(live, site: dict[str, bytes]) -> set[str]:  # type: ignore[no-untyped-def]
    listings = b"".join(
        body for path, body in site.items() if path in ("/", "/feed.xml") or "/category/" in path
    ).decode()
    return {p.info_code for p in live if p.url_path in listings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000, help="posts in the 6-day pool")
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--hours", type=float, default=72, help="simulated time span")
    parser.add_argument("--step", type=float, default=60, help="minutes between runs")
    args = parser.parse_args()

    end = dt.datetime(2022, 6, 8, 12, tzinfo=SHANGHAI)
    pool = generate_posts(args.posts, seed=21, n_categories=args.categories, now=end, window_days=6)
    timeline = Timeline(pool)
    start = end - dt.timedelta(hours=args.hours)
    runs = int(args.hours * 60 / args.step) + 1
    steps = [start + dt.timedelta(minutes=args.step * i) for i in range(runs)]
    ever_listed: set[str] = set()
    per_run: list[dict[str, float]] = []
    article_hits: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, ReplicaServer(timeline.site_at(steps[0])) as server:
        warehouse = Path(tmp) / "wh"
        for index, at in enumerate(steps):
            site = timeline.site_at(at)
            server.update(site)
            live = timeline.live(at)
            ever_listed |= _listed(live, site)
            before = len(server.requests)
            report = run_flow(crawl, site=server.base_url, warehouse=str(warehouse), rps=0)
            paths = [path for _, path, _ in server.requests[before:]]
            posts = [p for p in paths if p.endswith(".html") and not p.startswith("/category/")]
            article_hits.update(posts)
            live_categories = len({p.category for p in live})
            per_run.append(
                {
                    "requests": len(paths),
                    "category_pages": sum(p.startswith("/category/") for p in paths),
                    "articles": len(posts),
                    "new": report["new_articles"],
                    "live_categories": live_categories,
                    "naive_requests": 1 + live_categories + report["new_articles"],
                    "first": index == 0,
                }
            )
        landed = set()
        import duckdb

        with duckdb.connect(str(warehouse / "finews.duckdb"), read_only=True) as connection:
            landed = {r[0] for r in connection.execute("SELECT info_code FROM articles").fetchall()}

    later = [r for r in per_run if not r["first"]]
    new_total = sum(r["new"] for r in later) or 1
    ours = sum(r["requests"] for r in later)
    naive = sum(r["naive_requests"] for r in later)
    share = statistics.mean(r["category_pages"] / r["live_categories"] for r in later)
    print("| runs | posts ever listed | captured | fetched twice | cpu cores |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    captured = len(landed & ever_listed)
    print(
        f"| {len(per_run)} (every {args.step:g} min over {args.hours:g} h) | {len(ever_listed)} "
        f"| {captured} ({100 * captured / len(ever_listed):.1f}%) "
        f"| {sum(1 for n in article_hits.values() if n > 1)} | {os.cpu_count()} |"
    )
    print()
    print("| after the first run | finews (incremental) | naive (every category page) |")
    print("| --- | ---: | ---: |")
    print(f"| requests per run | {ours / len(later):.1f} | {naive / len(later):.1f} |")
    print(f"| requests per new article | {ours / new_total:.2f} | {naive / new_total:.2f} |")
    print(f"| category pages per run / live categories | {share:.3f} | 1.000 |")
    print(
        f"| first run (empty warehouse): requests | {per_run[0]['requests']} | "
        f"{per_run[0]['naive_requests']} |"
    )


if __name__ == "__main__":
    main()
