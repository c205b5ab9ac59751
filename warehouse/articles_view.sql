-- One row per info_code: its most recently fetched row (a body that changed back counts as the
-- current one again), with every category the article was ever listed in. Compaction
-- materialises this answer in articles_current/ (see warehouse/snapshot.py), categories
-- merged. The catalog names the data files the snapshot does not reflect yet (the delta: runs
-- landed since, a compaction interrupted half way): this view then deduplicates snapshot and
-- delta rows together, read as one list of files (one scan: DuckDB prunes unused columns through
-- it, which it does not through a UNION in a view). With no delta, `articles` is the snapshot
-- itself, with no dedupe at all.
CREATE OR REPLACE VIEW articles AS
WITH candidates AS NOT MATERIALIZED (
    SELECT * FROM read_parquet({candidate_files}, union_by_name = true,
                               hive_partitioning = false)
),
latest AS (
    SELECT *
    FROM candidates
    QUALIFY row_number() OVER (PARTITION BY info_code
                               ORDER BY fetched_at DESC, run_id DESC) = 1
),
merged AS (
    SELECT info_code, list_sort(list_distinct(flatten(list(listed)))) AS categories
    FROM (
        SELECT info_code, categories AS listed FROM candidates
        UNION ALL
        SELECT info_code, [category]
        FROM read_parquet({delta_sightings}, union_by_name = true, hive_partitioning = false)
        WHERE category IS NOT NULL
    )
    GROUP BY info_code
)
SELECT latest.* REPLACE (coalesce(merged.categories, latest.categories) AS categories)
FROM latest
LEFT JOIN merged USING (info_code);
