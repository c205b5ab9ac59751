import datetime as dt
import threading
from pathlib import Path

import duckdb
import pytest

from warehouse import catalog, state
from warehouse.catalog import CATALOG_NAME, QueryRefused, refresh_catalog, run_query
from warehouse.state import load_known
from warehouse.writer import write_rows

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _article(code: str, body: str, fetched: dt.datetime, category: str) -> dict[str, object]:
    return {
        "info_code": code,
        "info_code_raw": "NW" + code,
        "url": f"http://h/{code}.html",
        "category": category,
        "categories": [category],
        "title": "标题",
        "published_at": dt.datetime(2022, 5, 31, 18, 3, 41, tzinfo=SHANGHAI),
        "source": "财联社",
        "digest": None,
        "body": body,
        "source_url": None,
        "content_hash": str(hash(body)),
        "fetched_at": fetched,
        "run_id": "r",
        "extractor": "x",
        "extraction_path": "region",
        "category_page": None,
        "tags": [],
        "dt": "2022-05-31",
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    root = tmp_path / "wh"
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [
        _article("1", "旧正文", t0, "a"),
        _article("1", "新正文", t0 + dt.timedelta(hours=1), "b"),
        _article("1", "新正文", t0 + dt.timedelta(hours=2), "b"),
        _article("2", "正文", t0, "a"),
    ]
    for index, row in enumerate(rows):
        write_rows(root, "articles", [row], partition="dt", name=f"t{index}")
    refresh_catalog(root)
    return root


def test_articles_view_keeps_latest_version_and_merges_categories(warehouse: Path) -> None:
    _, rows = run_query(warehouse, "SELECT info_code, body, categories FROM articles ORDER BY 1")
    assert rows == [("1", "新正文", ["a", "b"]), ("2", "正文", ["a"])]
    _, versions = run_query(warehouse, "SELECT count(*) FROM article_versions WHERE info_code='1'")
    assert versions == [(2,)]


def test_published_at_keeps_the_second_and_offset(warehouse: Path) -> None:
    _, rows = run_query(warehouse, "SELECT published_at::VARCHAR FROM articles WHERE info_code='2'")
    assert rows == [("2022-05-31 18:03:41+08",)]


def test_catalog_opens_from_anywhere_read_only(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with duckdb.connect(str(warehouse / CATALOG_NAME), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM articles").fetchone() == (2,)


def test_empty_warehouse_has_working_views(tmp_path: Path) -> None:
    refresh_catalog(tmp_path / "empty")
    for view in ("articles", "article_versions", "sightings", "fetch_log", "failures", "runs"):
        assert run_query(tmp_path / "empty", f"SELECT count(*) FROM {view}")[1] == [(0,)]


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO '{root}/articles/x.parquet'",
        "COPY articles TO '/tmp/finews-leak.csv'",
        "DELETE FROM articles",
        "DROP VIEW articles",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO articles SELECT * FROM articles",
        "ATTACH '/tmp/other.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "SELECT 1; DELETE FROM articles",
        "PRAGMA database_list",
    ],
    ids=[
        "copy-into-warehouse",
        "copy-out",
        "delete",
        "drop",
        "create",
        "insert",
        "attach",
        "read-passwd",
        "read-text",
        "set",
        "install",
        "two-statements",
        "pragma",
    ],
)
def test_sql_refuses_anything_but_reading(warehouse: Path, query: str) -> None:
    before = sorted(p.name for p in warehouse.rglob("*"))
    with pytest.raises(QueryRefused) as info:
        run_query(warehouse, query.replace("{root}", str(warehouse)))
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in warehouse.rglob("*")) == before
    assert not Path("/tmp/finews-leak.csv").exists()


def test_catalog_rebuilds_take_turns(warehouse: Path) -> None:
    """A rebuild that listed the files before a compaction deleted some must not be
    installed after the compaction's own rebuild: rebuilds wait for one another."""
    done = threading.Event()
    with catalog._catalog_lock(warehouse):
        thread = threading.Thread(target=lambda: (refresh_catalog(warehouse), done.set()))
        thread.start()
        assert not done.wait(0.5), "a rebuild started while another one runs waits"
    assert done.wait(30)
    thread.join()


def test_a_file_deleted_while_listed_is_listed_again(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction deletes a file between a rebuild's listing and its views: the rebuild
    lists again (the merged file holds the rows), and so does the crawl state."""
    listed = catalog.views_sql
    deleted: list[Path] = []

    def listed_then_deleted(root: Path) -> str:
        sql = listed(root)
        if not deleted:
            deleted.append(next((root / "articles").glob("dt=*/part-t3.parquet")))
            deleted[0].unlink()
        return sql

    monkeypatch.setattr(catalog, "views_sql", listed_then_deleted)
    refresh_catalog(warehouse)
    assert deleted
    assert run_query(warehouse, "SELECT info_code FROM articles") == (["info_code"], [("1",)])

    deleted.clear()
    monkeypatch.setattr(state, "views_sql", listed_then_deleted)
    write_rows(warehouse, "articles", [_article("2", "正文", T0, "a")], partition="dt", name="t3")
    assert load_known(warehouse).info_codes == {"1"}


def test_reading_a_folder_that_holds_no_warehouse_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not a warehouse")
    with pytest.raises(QueryRefused, match="no warehouse at"):
        run_query(tmp_path, "SELECT count(*) FROM articles")
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
