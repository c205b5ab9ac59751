"""Files a delta merge replaced, kept on disk for a grace period before they are deleted.

A DuckDB session opened on ``finews.duckdb`` keeps the file lists its views were built with.
A delta merge after every few runs would break such sessions every hour if it deleted what it
merged at once; instead it *retires* those files: new catalogs and the crawl state leave them
out (the merged file holds the same rows), while sessions opened earlier go on reading them.
Files retired longer than ``GRACE_S`` ago are deleted by the next merge or compaction.

The list (``.state/retired.json``: path relative to the warehouse → retirement time) is only
written under the compaction lock, and replaced atomically, so readers need no lock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from warehouse.writer import replacing

RETIRED = Path(".state") / "retired.json"
GRACE_S = 3600.0


def retired(root: Path) -> dict[str, float]:
    """Retired files (relative to ``root``) and when they were retired; {} when none."""
    try:
        data = json.loads((root / RETIRED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(name): float(at) for name, at in data.items()}


def retire(root: Path, paths: list[Path], *, now: float | None = None) -> None:
    """Add ``paths`` (absolute, under ``root``) to the list. Call under the compaction lock."""
    if not paths:
        return
    entries = retired(root)
    at = time.time() if now is None else now
    for path in paths:
        entries[str(path.relative_to(root))] = at
    _write(root, entries)


def purge(root: Path, *, grace_s: float = GRACE_S, now: float | None = None) -> int:
    """Delete files retired more than ``grace_s`` ago; how many. Call under the compaction lock."""
    entries = retired(root)
    cutoff = (time.time() if now is None else now) - grace_s
    expired = [name for name, at in entries.items() if at <= cutoff]
    for name in expired:
        (root / name).unlink(missing_ok=True)
        del entries[name]
    if expired:
        _write(root, entries)
    return len(expired)


def _write(root: Path, entries: dict[str, float]) -> None:
    """Durably: a list lost or torn by a power cut would put retired files back in views."""
    target = root / RETIRED
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as temp:
        temp.write_text(json.dumps(entries, sort_keys=True), encoding="utf-8")
