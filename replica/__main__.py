"""``python -m replica``: write a synthetic site to a folder or serve it until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from urllib.parse import unquote

from replica import ReplicaServer, generate_posts, render_site


def write_site(site: dict[str, bytes], out: Path) -> int:
    """Lay the site out as GitHub Pages files would be (directories get index.html)."""
    for path, body in site.items():
        rel = unquote(path).lstrip("/")
        target = out / (rel + "index.html" if rel == "" or rel.endswith("/") else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return len(site)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replica", description=__doc__)
    parser.add_argument("--posts", type=int, default=200, help="number of posts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--categories", type=int, default=20, help="categories incl. emnews")
    parser.add_argument("--window-days", type=float, default=3.0)
    parser.add_argument("--base-url", default="https://finews.withounder.com")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="write the site into this folder")
    action.add_argument("--serve", action="store_true", help="serve on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port for --serve (0: any free)")
    args = parser.parse_args(argv)

    posts = generate_posts(
        args.posts, seed=args.seed, n_categories=args.categories, window_days=args.window_days
    )
    if args.out is not None:
        count = write_site(render_site(posts, base_url=args.base_url), args.out)
        print(f"wrote {count} files for {len(posts)} posts to {args.out}")
        return 0
    server = ReplicaServer(render_site(posts, base_url=args.base_url), port=args.port)
    with server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
