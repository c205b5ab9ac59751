"""Compaction on real Parquet warehouses, read back through the real DuckDB catalog."""

import datetime as dt
import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse.compaction as compaction
from warehouse.catalog import connect_read_only, refresh_catalog
from warehouse.compaction import CompactionBusy, compact
from warehouse.schema import ARTICLES, TABLES
from warehouse.writer import ensure_layout, remove_stale_temp_files, write_rows

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
VANISHED = ("No such file or directory", "No files found")


def _day(index: int) -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=index)).isoformat()


def _article(
    code: str, day: str, body: str, *, fetched: dt.datetime = T0, run: str = "r"
) -> dict[str, object]:
    return {
        "info_code": code,
        "info_code_raw": "NW" + code,
        "url": f"http://h/{code}.html",
        "category": "a",
        "categories": ["a"],
        "title": "标题",
        "published_at": dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=SHANGHAI),
        "source": "财联社",
        "digest": None,
        "body": body,
        "source_url": None,
        "content_hash": f"h-{body}",
        "fetched_at": fetched,
        "run_id": run,
        "extractor": "x",
        "extraction_path": "region",
        "category_page": None,
        "tags": ["t"],
        "dt": day,
    }


def _sighting(code: str, day: str, category: str, run: str) -> dict[str, object]:
    return {
        "info_code": code,
        "info_code_raw": code,
        "url": f"http://h/{code}.html",
        "category": category,
        "listed_on": f"http://h/{category}",
        "seen_at": T0,
        "run_id": run,
        "dt": day,
    }


def _build(root: Path, *, days: int, files: int, per_file: int = 3) -> set[str]:
    """``files`` runs per day partition; every later run re-lands run 0's first row unchanged."""
    codes: set[str] = set()
    for day_index in range(days):
        day = _day(day_index)
        for run in range(files):
            rows = [
                _article(f"{day_index:03d}{run}{n}", day, f"正文{run}{n}", run=f"r{run}")
                for n in range(per_file)
            ]
            if run:
                rows.append(_article(f"{day_index:03d}00", day, "正文00", run="r0"))
            write_rows(root, "articles", rows, partition="dt", name=f"r{run}")
            sightings = [_sighting(row["info_code"], day, f"c{run}", f"r{run}") for row in rows]
            write_rows(root, "sightings", sightings, partition="dt", name=f"r{run}")
            codes.update(row["info_code"] for row in rows)
    refresh_catalog(root)
    return codes


def _files(root: Path, table: str = "articles") -> list[Path]:
    return sorted((root / table).rglob("part-*.parquet"))


def _query(root: Path, sql: str) -> list[tuple[object, ...]]:
    with connect_read_only(root) as connection:
        return connection.execute(sql).fetchall()


def _snapshot(root: Path) -> tuple[list[tuple[object, ...]], ...]:
    return (
        _query(root, "SELECT * FROM articles ORDER BY info_code"),
        _query(root, "SELECT * FROM article_versions ORDER BY info_code, content_hash"),
        _query(root, "SELECT DISTINCT * FROM sightings ORDER BY ALL"),
    )


def _raw_rows(root: Path, table: str = "articles") -> int:
    return sum(pq.read_metadata(path).num_rows for path in _files(root, table))


def test_merges_each_partition_into_one_sorted_file_and_keeps_every_article(
    tmp_path: Path,
) -> None:
    root = tmp_path / "wh"
    _build(root, days=3, files=4)
    marker = root / "articles" / "_schema.parquet"
    marker_before = (marker.stat().st_ino, marker.stat().st_mtime_ns, marker.read_bytes())
    before = _snapshot(root)

    report = compact(root)

    assert _snapshot(root) == before
    files = _files(root)
    assert len(files) == 3
    assert all(path.name.startswith("part-compacted-") for path in files)
    assert report["articles"].partitions_compacted == 3
    assert (report["articles"].files_before, report["articles"].files_after) == (12, 3)
    assert report["articles"].duplicates_dropped == 3 * 3
    assert report["sightings"].files_after == 3
    assert (marker.stat().st_ino, marker.stat().st_mtime_ns, marker.read_bytes()) == marker_before
    merged = pq.read_table(files[0])
    assert merged.column_names == ARTICLES.names
    codes = merged.column("info_code").to_pylist()
    assert codes == sorted(codes)
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_drops_exact_duplicates_but_keeps_distinct_versions(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    day = _day(0)
    same = _article("1", day, "正文")
    later = _article("1", day, "正文", fetched=T0 + dt.timedelta(hours=1), run="r2")
    changed = _article("1", day, "新正文", fetched=T0 + dt.timedelta(hours=2), run="r3")
    for index, rows in enumerate([[same], [same, later], [same, changed], [changed]]):
        write_rows(root, "articles", rows, partition="dt", name=f"r{index}")
    refresh_catalog(root)
    before = _snapshot(root)

    report = compact(root)

    assert (report["articles"].rows_before, report["articles"].rows_after) == (6, 3)
    assert _raw_rows(root) == 3
    assert _snapshot(root) == before
    assert _query(root, "SELECT body FROM articles") == [("新正文",)]
    assert _query(root, "SELECT count(*) FROM article_versions") == [(2,)]


def test_second_compaction_is_a_no_op(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    _build(root, days=2, files=3)
    compact(root)
    files = {path: path.stat().st_ino for path in _files(root)}

    report = compact(root)

    assert report.partitions_compacted == 0
    assert (report.files_before, report.files_after) == (0, 0)
    assert {path: path.stat().st_ino for path in _files(root)} == files


def test_big_partitions_become_a_few_files_of_target_size(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    _build(root, days=1, files=5, per_file=2)
    rows = _raw_rows(root)
    before = _snapshot(root)

    report = compact(root, tables=["articles"], target_rows=4)

    unique = rows - 4
    assert report["articles"].files_after == len(_files(root)) == -(-unique // 4)
    assert _snapshot(root) == before
    assert compact(root, tables=["articles"], target_rows=4).partitions_compacted == 0


def test_older_files_without_newer_columns_get_nulls(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    day = _day(0)
    write_rows(root, "articles", [_article("1", day, "新")], partition="dt", name="new")
    old_schema = pa.schema([field for field in ARTICLES if field.name not in {"tags", "digest"}])
    old = pa.Table.from_pylist([_article("2", day, "旧")], schema=old_schema)
    pq.write_table(old, root / "articles" / f"dt={day}" / "part-old.parquet")
    refresh_catalog(root)

    compact(root)

    [merged] = _files(root)
    assert pq.read_table(merged).select(["info_code", "tags"]).to_pylist() == [
        {"info_code": "1", "tags": ["t"]},
        {"info_code": "2", "tags": None},
    ]
    assert _query(root, "SELECT info_code, tags FROM articles ORDER BY 1") == [
        ("1", ["t"]),
        ("2", None),
    ]


def test_files_landing_during_compaction_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "wh"
    _build(root, days=1, files=3)
    listed = compaction._list_sources

    def list_then_land(folder: Path, select: object = None) -> list[object]:
        sources = listed(folder, select)
        if folder.parent.name == "articles":
            late = _article("999", _day(0), "迟到")
            write_rows(root, "articles", [late], partition="dt", name="late-run")
        return sources

    monkeypatch.setattr(compaction, "_list_sources", list_then_land)

    compact(root)

    late_file = root / "articles" / f"dt={_day(0)}" / "part-late-run.parquet"
    assert late_file.exists()
    assert len(_files(root)) == 2
    assert _query(root, "SELECT body FROM articles WHERE info_code = '999'") == [("迟到",)]


def test_reader_never_sees_a_missing_or_duplicated_article(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    codes = _build(root, days=16, files=4, per_file=2)
    stop = threading.Event()
    started = threading.Event()
    results: list[dict[str, int]] = []
    vanished: list[str] = []
    other: list[BaseException] = []

    def read_in_a_loop() -> None:
        while not stop.is_set():
            try:  # a connection per query, as `finews sql` does: views over the files now
                with connect_read_only(root) as connection:
                    rows = connection.execute(
                        "SELECT info_code, count(*) FROM articles GROUP BY 1"
                    ).fetchall()
            except Exception as exc:
                # A file deleted between listing and opening it: retry, never wrong rows.
                (vanished if any(text in str(exc) for text in VANISHED) else other).append(exc)
                continue
            results.append(dict(rows))
            started.set()

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        assert started.wait(10)
        reads_before = len(results)
        report = compact(root)
        reads_during = len(results) - reads_before
    finally:
        stop.set()
        reader.join()

    assert report["articles"].partitions_compacted == 16
    assert other == []
    assert reads_during >= 2
    for result in results:
        assert set(result) == codes
        assert set(result.values()) == {1}
    print(f"{len(results)} reads, {len(vanished)} retried after a vanished source")


def test_busy_when_another_compaction_holds_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    _build(root, days=1, files=2)
    lock = root / ".state" / "compact.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CompactionBusy) as info:
            compact(root)
        assert isinstance(info.value, RuntimeError)
        assert "\n" not in str(info.value)
        assert len(_files(root)) == 2
    assert compact(root).partitions_compacted == 2
    assert sorted(os.listdir(root / ".state")) == ["catalog.lock", "compact.lock"]


KILL_AT = {
    "before-rename": "compaction.os.replace = kill",
    "before-delete": "compaction._delete_sources = kill",
}


@pytest.mark.parametrize("point", sorted(KILL_AT))
def test_kill_9_loses_nothing_and_next_compaction_cleans_up(tmp_path: Path, point: str) -> None:
    root = tmp_path / "wh"
    _build(root, days=2, files=3)
    before = _snapshot(root)
    sources = _files(root)
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import warehouse.compaction as compaction\n"
        "def kill(*args):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"{KILL_AT[point]}\n"
        "compaction.compact(Path(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    left = _files(root)
    assert set(sources) <= set(left)
    if point == "before-delete":
        assert len(left) == len(sources) + 2
    temps = list(root.rglob(".*.tmp"))
    assert (len(temps) == 1) if point == "before-rename" else (temps == [])
    assert _snapshot(root) == before

    report = compact(root)

    assert len(_files(root)) == 2
    assert _raw_rows(root) == report["articles"].rows_after == 2 * 9
    assert _snapshot(root) == before
    assert remove_stale_temp_files(root, older_than_s=0) == len(temps)


def test_stale_temp_files_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    _build(root, days=1, files=2)
    folder = root / "articles" / f"dt={_day(0)}"
    temp = folder / ".part-compacted-0123.parquet.deadbeef.tmp"
    temp.write_bytes(b"PAR1 half a file")
    before = _snapshot(root)

    report = compact(root)

    assert report["articles"].files_before == 2
    assert temp.read_bytes() == b"PAR1 half a file"
    assert _snapshot(root) == before
    assert remove_stale_temp_files(root, older_than_s=0) == 1


def test_log_tables_drop_exact_duplicates_and_runs_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    day = _day(0)
    fetch = {
        "url": "http://h/1.html",
        "final_url": "http://h/1.html",
        "kind": "article",
        "status": 200,
        "bytes": 10,
        "elapsed_s": 0.5,
        "attempts": 1,
        "error": None,
        "fetched_at": T0,
        "run_id": "r",
        "dt": day,
    }
    failure = {
        "url": "http://h/2.html",
        "info_code": "2",
        "stage": "fetch",
        "reason": "404",
        "status": 404,
        "failed_at": T0,
        "run_id": "r",
        "dt": day,
    }
    for run in range(3):
        rows = [fetch, {**fetch, "attempts": run + 1}]
        write_rows(root, "fetch_log", rows, partition="dt", name=f"r{run}")
        write_rows(root, "failures", [failure], partition="dt", name=f"r{run}")
    run_row = dict.fromkeys(TABLES["runs"].names) | {"run_id": "r"}
    write_rows(root, "runs", [run_row], partition=None, name="r0")
    write_rows(root, "runs", [run_row | {"run_id": "s"}], partition=None, name="r1")
    refresh_catalog(root)

    report = compact(root)

    assert (report["fetch_log"].rows_before, report["fetch_log"].rows_after) == (6, 3)
    assert (report["failures"].rows_before, report["failures"].rows_after) == (3, 1)
    assert _query(root, "SELECT attempts FROM fetch_log ORDER BY 1") == [(1,), (2,), (3,)]
    assert len(_files(root, "runs")) == 2
    with pytest.raises(ValueError, match="unknown table"):
        compact(root, tables=["nope"])


def test_delta_groups_pair_files_over_half_the_group_size() -> None:
    """Files of more than half a group's rows still merge, two at a time, not alone."""

    def sources(*rows: int) -> list[compaction._Source]:
        return [compaction._Source(Path(f"f{i}"), i, 0, n) for i, n in enumerate(rows)]

    groups = compaction._groups(sources(*[1100] * 8), 2000)
    assert [[s.path.name for s in group] for group in groups] == [
        ["f0", "f1"],
        ["f2", "f3"],
        ["f4", "f5"],
        ["f6", "f7"],
    ]
    assert sum(len(group) for group in compaction._groups(sources(1500, 600) * 4, 2000)) == 8
    assert compaction._groups(sources(1900), 2000) == []


def test_listing_state_is_compacted_and_reads_the_same(tmp_path: Path) -> None:
    """Every run lands a listing_state file per day: the crawl reads them all at start."""
    root = tmp_path / "wh"
    ensure_layout(root)
    for run in range(6):
        row = {
            "url": f"http://h/category/c{run % 2}.html",
            "kind": "category",
            "status": 200,
            "etag": f'"{run}"',
            "checked_at": dt.datetime(2024, 3, 1, run, tzinfo=dt.UTC),
            "run_id": f"r{run}",
            "dt": "2024-03-01",
        }
        write_rows(root, "listing_state", [row], partition="dt", name=f"r{run}")
    query = "SELECT url, etag FROM listing_state ORDER BY url"
    with connect_read_only(root) as connection:
        before = connection.execute(query).fetchall()
    compact(root)
    assert len(_files(root, "listing_state")) == 1
    with connect_read_only(root) as connection:
        assert (
            connection.execute(query).fetchall()
            == before
            == [
                ("http://h/category/c0.html", '"4"'),
                ("http://h/category/c1.html", '"5"'),
            ]
        )
