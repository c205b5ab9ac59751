"""Every table of the lake: its Arrow schema (how a batch is built), its DDL, and the views."""

from __future__ import annotations

from importlib.resources import files

import duckdb
import pyarrow as pa

UTC_TS = pa.timestamp("ms", tz="UTC")

ARTICLES = pa.schema(
    [
        ("info_code", pa.string()),
        ("info_code_raw", pa.string()),
        ("url", pa.string()),
        ("category", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("title", pa.string()),
        ("published_at", pa.timestamp("s", tz="+08:00")),
        ("published_at_source", pa.string()),
        ("source", pa.string()),
        ("digest", pa.string()),
        ("body", pa.string()),
        ("source_url", pa.string()),
        ("content_hash", pa.string()),
        ("fetched_at", UTC_TS),
        ("run_id", pa.string()),
        ("extractor", pa.string()),
        ("extraction_path", pa.string()),
        ("category_page", pa.string()),
        ("tags", pa.list_(pa.string())),
    ]
)

SIGHTINGS = pa.schema(
    [
        ("info_code", pa.string()),
        ("info_code_raw", pa.string()),
        ("url", pa.string()),
        ("category", pa.string()),
        ("listed_on", pa.string()),
        ("seen_at", UTC_TS),
        ("run_id", pa.string()),
    ]
)

FETCH_LOG = pa.schema(
    [
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("kind", pa.string()),
        ("status", pa.int32()),
        ("bytes", pa.int64()),
        ("elapsed_s", pa.float64()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("fetched_at", UTC_TS),
        ("run_id", pa.string()),
    ]
)

FAILURES = pa.schema(
    [
        ("url", pa.string()),
        ("info_code", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("status", pa.int32()),
        ("failed_at", UTC_TS),
        ("run_id", pa.string()),
        ("transient", pa.bool_()),
        ("category", pa.string()),
    ]
)

RAW_PAGES = pa.schema(
    [
        ("info_code", pa.string()),
        ("info_code_raw", pa.string()),
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("category", pa.string()),
        ("content_type", pa.string()),
        ("content", pa.binary()),
        ("fetched_at", UTC_TS),
        ("run_id", pa.string()),
    ]
)

LISTING_STATE = pa.schema(
    [
        ("url", pa.string()),
        ("kind", pa.string()),
        ("category", pa.string()),
        ("status", pa.int32()),
        ("etag", pa.string()),
        ("last_modified", pa.string()),
        ("content_hash", pa.string()),
        ("refs", pa.int64()),
        ("checked_at", UTC_TS),
        ("run_id", pa.string()),
    ]
)

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow", pa.string()),
        ("status", pa.string()),
        ("site", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("started_at", UTC_TS),
        ("finished_at", UTC_TS),
        ("elapsed_s", pa.float64()),
        ("categories_listed", pa.int64()),
        ("pages_fetched", pa.int64()),
        ("refs_seen", pa.int64()),
        ("new_articles", pa.int64()),
        ("new_versions", pa.int64()),
        ("duplicates_skipped", pa.int64()),
        ("failures", pa.int64()),
        ("not_modified", pa.int64()),
        ("retried", pa.int64()),
        ("extractor", pa.string()),
        ("commits", pa.int64()),
        ("commit_retries", pa.int64()),
        ("snapshot_id", pa.int64()),
    ]
)

# ``articles`` holds one row per info_code (its latest version, categories merged), maintained
# by every landing commit; ``article_versions`` one row per distinct body of an info_code (its
# first fetch); ``listing_checks`` every check of a listing page (``listing_state``: the last).
TABLES: dict[str, pa.Schema] = {
    "articles": ARTICLES,
    "article_versions": ARTICLES,
    "sightings": SIGHTINGS,
    "fetch_log": FETCH_LOG,
    "failures": FAILURES,
    "runs": RUNS,
    "raw_pages": RAW_PAGES,
    "listing_checks": LISTING_STATE,
}

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
}


def _sql_type(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ"
    return _SQL_TYPES[kind]


def create_table_sql(table: str) -> str:
    columns = ", ".join(f"{field.name} {_sql_type(field.type)}" for field in TABLES[table])
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns})"


def views_sql() -> list[str]:
    """The views stored in the catalog: readable from any DuckDB that attached the lake."""
    text = files("warehouse").joinpath("views.sql").read_text(encoding="utf-8")
    return [statement.query for statement in duckdb.extract_statements(text)]


VIEWS = ("listing_state", "page_failures", "retry_queue", "dead_pages", "listing_retry_queue")


def ddl_statements(existing: set[str]) -> list[str]:
    """What creates the missing tables and (re)creates the views; nothing when all are there."""
    if existing >= set(TABLES) | set(VIEWS):
        return []
    return [*(create_table_sql(table) for table in TABLES if table not in existing), *views_sql()]
