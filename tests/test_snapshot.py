"""The materialised current snapshot: the ``articles`` view must answer exactly as a full dedupe.

Every check compares the view with the definition it replaces (one window over every landed
row, categories merged from every version and sighting), computed here straight from the files.
"""

import datetime as dt
import random
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import warehouse.compaction as compaction
import warehouse.snapshot as snapshot
from warehouse.catalog import CATALOG_NAME, connect_read_only, refresh_catalog, views_sql
from warehouse.compaction import CompactionBusy, _exclusive_lock, compact, merge_delta
from warehouse.retired import purge, retired
from warehouse.snapshot import ROW_GROUP_ROWS, SNAPSHOT_DIR, read_manifest
from warehouse.writer import write_rows

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

REFERENCE = """
WITH rows AS (
    SELECT * FROM read_parquet('{root}/articles/**/*.parquet', union_by_name = true)
),
latest AS (
    SELECT * FROM rows
    QUALIFY row_number() OVER (PARTITION BY info_code ORDER BY fetched_at DESC, run_id DESC) = 1
),
merged AS (
    SELECT info_code, list_sort(list_distinct(flatten(list(listed)))) AS categories
    FROM (
        SELECT info_code, categories AS listed FROM rows
        UNION ALL
        SELECT info_code, [category]
        FROM read_parquet('{root}/sightings/**/*.parquet', union_by_name = true)
        WHERE category IS NOT NULL
    )
    GROUP BY info_code
)
SELECT latest.* REPLACE (coalesce(merged.categories, latest.categories) AS categories)
FROM latest LEFT JOIN merged USING (info_code)
ORDER BY info_code
"""


def _article(code: str, day: int, body: str, fetched_h: int, run: str, cat: str) -> dict:
    published = dt.datetime(2024, 1, 1 + day, 9, tzinfo=SHANGHAI)
    return {
        "info_code": code,
        "info_code_raw": "NW" + code,
        "url": f"http://h/{code}.html",
        "category": cat,
        "categories": [cat],
        "title": f"标题{code}",
        "published_at": published,
        "published_at_source": "page",
        "source": "财联社",
        "digest": None,
        "body": body,
        "source_url": None,
        "content_hash": f"h-{body}",
        "fetched_at": T0 + dt.timedelta(hours=fetched_h),
        "run_id": run,
        "extractor": "x",
        "extraction_path": "region",
        "category_page": None,
        "tags": [],
        "dt": published.date().isoformat(),
    }


def _sighting(code: str, cat: str, run: str) -> dict:
    return {
        "info_code": code,
        "info_code_raw": code,
        "url": f"http://h/{code}.html",
        "category": cat,
        "listed_on": f"http://h/{cat}",
        "seen_at": T0,
        "run_id": run,
        "dt": "2024-01-01",
    }


class Landings:
    """Random runs: new articles, new and *older* versions, exact repeats, new sightings."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.random, self.runs = root, random.Random(seed), 0
        self.landed: list[dict] = []
        self.upcoming: list[str] = []  # codes sighted before they land (a failed fetch, say)

    def _upcoming(self, pop: bool) -> str:
        while len(self.upcoming) < 3:
            self.upcoming.append(f"{self.random.randrange(10**6):06d}")
        return self.upcoming.pop(0) if pop else self.random.choice(self.upcoming)

    def run(self, articles: int = 6) -> None:
        self.runs += 1
        run, pick = f"run{self.runs:03d}", self.random
        rows = []
        for _ in range(articles):
            roll = pick.random()
            if self.landed and roll < 0.25:  # an exact repeat (a crash leftover, a refetch)
                rows.append(dict(pick.choice(self.landed)))
                continue
            if self.landed and roll < 0.6:  # a new version, sometimes fetched *earlier*
                old = pick.choice(self.landed)
                code, day = old["info_code"], old["published_at"].day - 1
                if pick.random() < 0.1:
                    day = (day + 1) % 5  # the corrected date moves it to another partition
            else:
                code, day = self._upcoming(pop=True), pick.randrange(5)
            row = _article(
                code,
                day,
                f"正文{pick.randrange(4)}",
                pick.randrange(100),
                run,
                pick.choice("abcd"),
            )
            rows.append(row)
        self.landed.extend(rows)
        write_rows(self.root, "articles", rows, partition="dt", name=run)
        sightings = [
            _sighting(
                self._upcoming(pop=False)
                if pick.random() < 0.3
                else pick.choice(self.landed)["info_code"],
                pick.choice("abcdef"),
                run,
            )
            for _ in range(3)
        ]
        write_rows(self.root, "sightings", sightings, partition="dt", name=run)


def _compacted(root: Path, seed: int, runs: int, articles: int = 6) -> Landings:
    """A warehouse of ``runs`` random runs, compacted once; more runs land through the result."""
    landings = Landings(root, seed)
    for _ in range(runs):
        landings.run(articles=articles)
    compact(root)
    return landings


def _view(root: Path) -> list[tuple]:
    with connect_read_only(root) as connection:
        return connection.execute("SELECT * FROM articles ORDER BY info_code").fetchall()


def _reference(root: Path) -> list[tuple]:
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'Asia/Shanghai'")
        return connection.execute(REFERENCE.format(root=root.resolve())).fetchall()


def _check(root: Path) -> list[tuple]:
    refresh_catalog(root)
    view = _view(root)
    assert view == _reference(root)
    assert len({row[0] for row in view}) == len(view)
    return view


@pytest.mark.parametrize("seed", range(4))
def test_view_equals_full_dedupe_before_after_and_between_compactions(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if seed % 2:  # built in many small key ranges; delta merged in groups of a few rows
        monkeypatch.setattr(snapshot, "BUCKET_ROWS", 5)
        monkeypatch.setattr(compaction, "DELTA_MERGE_ROWS", 7)
    root = tmp_path / "wh"
    landings = Landings(root, seed)
    for _ in range(8):
        landings.run()
    assert read_manifest(root).generation == 0
    _check(root)

    report = compact(root)
    manifest = read_manifest(root)
    assert manifest.generation == 1 and report.snapshot_rows == manifest.rows > 0
    assert _check(root)

    for round_ in range(3):
        for run in range(4):
            landings.run()
            _check(root)  # snapshot + a growing delta
            if run % 2:
                merge_delta(root, min_files=2)  # the delta merged into fewer files
                _check(root)
        compact(root, min_files=2 + round_)  # some partitions merged, some left as they are
        _check(root)
    assert read_manifest(root).generation == 4


def test_snapshot_is_sorted_in_small_row_groups_and_old_ones_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    landings = _compacted(root, 7, runs=5, articles=40)
    first = set(read_manifest(root).files)
    landings.run()
    compact(root)
    manifest = read_manifest(root)
    on_disk = {path.name for path in (root / SNAPSHOT_DIR).glob("snapshot-*.parquet")}
    assert on_disk == set(manifest.files) and not on_disk & first
    codes = []
    for path in manifest.snapshot_paths(root):
        metadata = pq.read_metadata(path)
        assert all(
            metadata.row_group(i).num_rows <= ROW_GROUP_ROWS for i in range(metadata.num_row_groups)
        )
        codes += pq.read_table(path, columns=["info_code"]).column(0).to_pylist()
    assert codes == sorted(codes) and len(codes) == len(set(codes)) == manifest.rows


def _articles_view_sql(root: Path) -> str:
    sql = views_sql(root)
    start = sql.index("CREATE OR REPLACE VIEW articles AS")
    return sql[start : sql.index(";", start)]


def test_files_the_snapshot_reflects_are_not_read_again(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    landings = _compacted(root, 3, runs=6)
    view = _articles_view_sql(root)
    assert "/articles/dt=" not in view and "/sightings/" not in view
    assert "row_number()" not in view  # no dedupe at query time
    assert view.count("/articles_current/snapshot-") == len(read_manifest(root).files)

    landings.run()
    view = _articles_view_sql(root)
    delta = {part for part in view.split("'") if "/articles/dt=" in part}
    assert {Path(path).name for path in delta} == {"part-run007.parquet"}
    assert "row_number()" in view


def test_kill_9_while_building_the_snapshot_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    landings = _compacted(root, 11, runs=6)
    landings.run()
    before = _check(root)
    generation = read_manifest(root).generation
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import warehouse.snapshot as snapshot\n"
        "def kill(*args):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "snapshot._write_manifest = kill\n"
        "import warehouse.compaction as compaction\n"
        "compaction.build_snapshot.__globals__['_write_manifest'] = kill\n"
        "compaction.compact(Path(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert read_manifest(root).generation == generation
    orphans = set((root / SNAPSHOT_DIR).glob("snapshot-*.parquet")) - set(
        read_manifest(root).snapshot_paths(root)
    )
    assert orphans  # the new snapshot was written, never switched to
    assert _check(root) == before

    compact(root)
    assert not orphans & set((root / SNAPSHOT_DIR).glob("snapshot-*.parquet"))
    assert _check(root) == before


def _files(root: Path, table: str) -> dict[str, int]:
    """Data files of a table (relative path -> inode)."""
    folder = root / table
    return {
        str(path.relative_to(folder)): path.stat().st_ino for path in folder.rglob("part-*.parquet")
    }


def test_merge_delta_merges_only_what_the_snapshot_does_not_reflect(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    landings = _compacted(root, 5, runs=6, articles=20)
    manifest = read_manifest(root)
    settled = {table: _files(root, table) for table in ("articles", "sightings")}
    for _ in range(9):
        landings.run()
    before = _check(root)
    delta = {
        name: ino
        for name, ino in _files(root, "articles").items()
        if name not in settled["articles"]
    }
    per_partition: dict[str, int] = {}
    for name in delta:
        per_partition[name.split("/")[0]] = per_partition.get(name.split("/")[0], 0) + 1
    crowded = {part for part, count in per_partition.items() if count >= 8}
    assert crowded and crowded != set(per_partition)  # some partitions merge, others do not

    refresh_catalog(root)
    session = duckdb.connect(str(root / CATALOG_NAME), read_only=True)  # opened before the merge
    session.execute("SET TimeZone = 'Asia/Shanghai'")
    report = merge_delta(root, min_files=8)

    assert report["articles"].partitions_compacted == len(crowded)
    assert read_manifest(root) == manifest  # the snapshot and its manifest are left alone
    after = _files(root, "articles")
    for table, files in settled.items():
        now = _files(root, table)
        assert {name: now.get(name) for name in files} == files  # same files, same inodes
    gone = retired(root)
    assert set(delta) <= set(after)  # merged sources are retired, still on disk for a while
    for part in per_partition:
        new = [name for name in after if name.startswith(f"{part}/")]
        new = [name for name in new if name not in settled["articles"]]
        live = [name for name in new if f"articles/{name}" not in gone]
        if part in crowded:
            assert len(live) == 1 and Path(live[0]).name.startswith("part-merged-")
            assert len(new) == per_partition[part] + 1
        else:
            assert live == new and len(new) == per_partition[part]
    assert _check(root) == before
    view = _articles_view_sql(root)
    assert "part-merged-" in view  # still delta: deduplicated by the view
    assert gone and not any(f"/{name}'" in view for name in gone)  # retired: not read
    rows = session.execute("SELECT * FROM articles ORDER BY info_code").fetchall()
    assert rows == before  # a session opened before the merge still reads the same answer
    session.close()

    for _ in range(8):  # the merged file is merged again with what lands next
        landings.run()
    merge_delta(root, min_files=8)
    _check(root)
    with _exclusive_lock(root), pytest.raises(CompactionBusy):
        merge_delta(root)
    assert purge(root, grace_s=3600) == 0  # not yet past the grace period
    compact(root)  # sessions reopen after a compaction: retired files go at once
    assert retired(root) == {}
    assert (
        max(
            sum(1 for name in _files(root, "articles") if name.startswith(part + "/"))
            for part in per_partition
        )
        == 1
    )
    _check(root)
