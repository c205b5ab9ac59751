"""Explicit Arrow schemas of every table, and the cast that brings a file to its table's."""

from __future__ import annotations

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
    ]
)

TABLES: dict[str, pa.Schema] = {
    "articles": ARTICLES,
    "sightings": SIGHTINGS,
    "fetch_log": FETCH_LOG,
    "failures": FAILURES,
    "runs": RUNS,
    "raw_pages": RAW_PAGES,
    "listing_state": LISTING_STATE,
}


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast to ``schema``; columns an older file lacks become nulls, unknown ones are refused."""
    extra = [name for name in data.column_names if schema.get_field_index(name) == -1]
    if extra:
        raise ValueError(f"columns not in the schema: {', '.join(extra)}")
    columns = [
        data.column(field.name).cast(field.type)
        if field.name in data.column_names
        else pa.nulls(data.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
