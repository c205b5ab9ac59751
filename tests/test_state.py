"""The crawl state follows the site's window, not the warehouse's age."""

import datetime as dt
from pathlib import Path

from warehouse.state import load_known
from warehouse.writer import write_rows

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
