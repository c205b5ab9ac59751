"""Developer check: the replica's templates reproduce the reference pages byte for byte.

Not part of the test suite (the reference pages are not shipped with finews). Run:
    FINEWS_SHARED_SITE=../shared/site .venv/bin/python scripts/check_replica_fidelity.py
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from replica import markup
from replica.posts import Post
from replica.render import render_site

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _shared_site() -> Path:
    env = os.environ.get("FINEWS_SHARED_SITE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "site"


def _split_html(chunk: str) -> tuple[markup.Item, ...]:
    items, pos, prefix = [], 0, ""
    while pos < len(chunk):
        if chunk[pos].isspace():
            pos += 1
        elif chunk.startswith("<!--", pos):
            end = chunk.index("-->", pos) + 3
            prefix, pos = prefix + chunk[pos:end], end
        else:
            tag = re.match(r"<(\w+)", chunk[pos:]).group(1)
            depth = 0
            for m in re.compile(rf"<(/?){tag}\b[^>]*?(/?)>").finditer(chunk, pos):
                depth += -1 if m.group(1) else 0 if m.group(2) else 1
                if depth == 0:
                    break
            items.append(markup.Item(prefix + chunk[pos : m.end()]))
            pos, prefix = m.end(), ""
    return tuple(items)


def _sample_post(path: Path) -> Post:
    raw = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    front, body = raw.split("---\n", 2)[1:]
    meta = dict(line.split(": ", 1) for line in front.strip().split("\n"))
    blocks: list[markup.Block] = []
    for chunk in body.strip("\n").split("\n\n"):
        if chunk.startswith("> "):
            blocks.append(markup.Digest(chunk[2:]))
        elif re.fullmatch(r"<(https?://\S*)?>", chunk):
            blocks.append(markup.SourceLink(chunk[1:-1]))
        elif chunk.startswith("["):
            links = tuple(re.findall(r"\[([^\]]*)\]\(([^)]*)\)", chunk))
            blocks.append(markup.BackLinks(links, "\n" if "\n" in chunk else "｜"))
        elif chunk.lstrip().startswith("<"):
            blocks.append(markup.HtmlRun(_split_html(chunk)))
        else:
            blocks.append(markup.MdPara(chunk))
    body_md, body_html, text = markup.assemble(blocks)
    when = datetime.strptime(meta["date"].removesuffix(" +0800"), "%Y-%m-%d %H:%M:%S")
    return Post(
        id_raw=path.stem.rsplit("-", 1)[1],
        category=meta["categories"],
        tag=meta["tags"],
        title=meta["title"].strip('"'),
        published_at=when.replace(tzinfo=SHANGHAI),
        date_has_offset=True,
        body_md=body_md,
        body_html=body_html,
        expected_text=text,
        digest=None,
        source_name=None,
        source_url=None,
    )


def check_layout() -> None:
    """Fed the real samples' bodies, the renderer must reproduce shared/site/pages exactly."""
    shared = _shared_site()
    if not (shared / "pages").is_dir():
        raise SystemExit(f"no reference pages at {shared}: set FINEWS_SHARED_SITE")
    published = [
        p
        for p in sorted((shared / "samples").glob("*.md"))
        if not p.read_text(encoding="utf-8").startswith("\n")
        and re.search(r"\d{4}-\d\d-\d\d-", p.name)
    ]
    site = render_site([_sample_post(p) for p in published])
    for name in sorted(os.listdir(shared / "pages")):
        if name.startswith("post-"):
            key = next(k for k in site if k.endswith(name.rsplit("-", 1)[1]))
        else:
            key = {"home.html": "/", "feed.xml": "/feed.xml"}.get(name, "/category/emnews.html")
        assert site[key] == (shared / "pages" / name).read_bytes(), name


if __name__ == "__main__":
    check_layout()
    print("replica layout identical to the reference pages")
