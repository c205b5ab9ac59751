"""The crawl state follows the site's window, not the warehouse's age."""

import datetime as dt
import shutil
from pathlib import Path

from warehouse.compaction import merge_delta
from warehouse.rawstore import iter_raw_pages
from warehouse.retired import retired
from warehouse.rows import partition_date
from warehouse.state import load_known, recent_files
from warehouse.writer import ensure_layout, write_rows

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _article(code: str, day: str | None) -> dict[str, object]:
    published = dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=SHANGHAI) if day else None
    return {
        "info_code": code,
        "info_code_raw": code,
        "url": f"http://h/{code}.html",
        "category": "a",
        "categories": ["a", f"c{code}"],
        "body": "正文",
        "content_hash": "h",
        "published_at": published,
        "fetched_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        "run_id": "r",
        "category_page": f"http://h/list/{code}",
        "dt": day or "unknown",
    }


def test_state_holds_recent_partitions_and_undated_posts_only(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    days = {"1": "2024-01-01", "2": "2024-02-15", "3": "2024-02-16", "4": "2024-03-01", "5": None}
    for code, day in days.items():
        write_rows(root, "articles", [_article(code, day)], partition="dt", name=f"r{code}")
    sightings = [
        {"info_code": "1", "url": "http://h/1.html", "category": "old", "dt": "2024-01-01"},
        {"info_code": "4", "url": "http://h/4.html", "category": "new", "dt": "2024-03-01"},
    ]
    for index, row in enumerate(sightings):
        write_rows(root, "sightings", [row], partition="dt", name=f"s{index}")

    known = load_known(root, days=14)

    assert known.info_codes == {"3", "4", "5"}  # 2024-02-16 is 14 days before 2024-03-01
    assert known.urls == {f"http://h/{code}.html" for code in "345"}
    assert known.category_pages["http://h/4.html"] == "http://h/list/4"
    assert ("4", "new") in known.categorised and ("4", "c4") in known.categorised
    assert not any(code in ("1", "2") for code, _ in known.categorised)
    assert load_known(root, days=100).info_codes == set(days)


def test_a_page_dated_years_ahead_does_not_move_the_window(tmp_path: Path) -> None:
    """One stray partition in the future (a warehouse landed before such dates were filed
    under ``unknown``) must not make the crawl forget the site's window and refetch it all."""
    root = tmp_path / "wh"
    for code, day in {"1": "2024-02-20", "2": "2024-03-01", "3": "2099-01-01"}.items():
        write_rows(root, "articles", [_article(code, day)], partition="dt", name=f"r{code}")
    assert load_known(root, days=14).info_codes == {"1", "2", "3"}


def test_a_date_after_the_fetch_is_filed_under_unknown() -> None:
    fetched = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    assert partition_date(dt.datetime(2099, 1, 1, tzinfo=SHANGHAI), fetched) == "unknown"
    assert partition_date(None, fetched) == "unknown"
    # the site's day, not UTC's; a clock a few hours ahead is still believed
    assert partition_date(dt.datetime(2024, 3, 1, 20, tzinfo=dt.UTC), fetched) == "2024-03-02"
    assert partition_date(dt.datetime(2020, 1, 1, tzinfo=SHANGHAI), fetched) == "2020-01-01"


def test_retired_files_are_not_state(tmp_path: Path) -> None:
    """A delta merge retires what it merged; the state reads the merged file instead (a
    retired file may be purged by another run while this one reads)."""
    root = tmp_path / "wh"
    for code in "12345678":
        write_rows(root, "articles", [_article(code, "2024-03-01")], partition="dt", name=code)
    merge_delta(root, min_files=2)
    gone = set(retired(root))
    assert gone, "the delta merge retired the run files"
    files = {str(path.relative_to(root)) for path in recent_files(root, "articles")}
    assert files and not files & gone
    assert load_known(root).info_codes == set("12345678")


def test_a_failure_left_twice_by_a_cut_short_compaction_counts_once(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    for attempt in range(3):
        row = {
            "url": "http://h/9.html",
            "info_code": "9",
            "stage": "fetch",
            "reason": "http 503",
            "status": 503,
            "failed_at": dt.datetime(2024, 3, 1, attempt, tzinfo=dt.UTC),
            "run_id": f"r{attempt}",
            "transient": True,
            "dt": "2024-03-01",
        }
        write_rows(root, "failures", [row], partition="dt", name=f"f{attempt}")
    (folder,) = (root / "failures").glob("dt=*")
    for path in list(folder.glob("part-*.parquet")):  # the merged copy, sources not yet deleted
        shutil.copy(path, path.with_name(f"part-compacted-{path.stem}.parquet"))
    (retry,) = load_known(root).retries
    assert retry.attempts == 3


def test_raw_pages_in_a_date_range_are_counted_as_they_are_yielded(tmp_path: Path) -> None:
    """The progress of ``backfill --reextract --since`` is out of the pages it will re-extract."""
    root = tmp_path / "wh"
    ensure_layout(root)
    for day in (1, 2, 3):
        row = {
            "info_code": f"2024030{day}",
            "info_code_raw": f"2024030{day}",
            "url": f"http://h/a/2024/03/0{day}/2024030{day}.html",
            "final_url": f"http://h/a/2024/03/0{day}/2024030{day}.html",
            "category": "a",
            "content": b"<html></html>",
            "fetched_at": dt.datetime(2024, 3, 4, tzinfo=dt.UTC),
            "run_id": "r",
            "dt": "2024-03-04",
        }
        write_rows(root, "raw_pages", [row], partition="dt", name=f"p{day}")
    pages = iter_raw_pages(
        root, categories=None, since=dt.date(2024, 3, 2), until=None, batch_size=10
    )
    assert pages.total == sum(len(batch) for batch in pages) == 2
