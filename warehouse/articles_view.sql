-- One row per info_code: its most recently fetched row (a body that changed back counts as the
-- current one again), with every category the article was ever listed in. Compaction
-- materialises this answer in articles_current/ (see warehouse/snapshot.py). The catalog lists
-- the data files the snapshot does not reflect yet (the delta: runs landed since, a compaction
-- interrupted half way); only the articles they mention are deduplicated again, together with
-- their snapshot row. Identical rows still give one row. With no delta, the view is the
-- snapshot itself.
CREATE OR REPLACE VIEW articles AS
WITH snapshot AS NOT MATERIALIZED (
    SELECT * FROM read_parquet({snapshot_files}, union_by_name = true,
                               hive_partitioning = false)
),
delta AS NOT MATERIALIZED (
    SELECT * FROM read_parquet({delta_articles}, union_by_name = true,
                               hive_partitioning = false)
),
delta_sightings AS NOT MATERIALIZED (
    SELECT info_code, category
    FROM read_parquet({delta_sightings}, union_by_name = true, hive_partitioning = false)
    WHERE category IS NOT NULL
),
touched AS (
    SELECT info_code FROM delta
    UNION
    SELECT info_code FROM delta_sightings
),
candidates AS NOT MATERIALIZED (
    SELECT * FROM snapshot SEMI JOIN touched ON snapshot.info_code = touched.info_code
    UNION ALL BY NAME
    SELECT * FROM delta
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
        SELECT info_code, [category] FROM delta_sightings
    )
    GROUP BY info_code
)
SELECT * FROM snapshot ANTI JOIN touched ON snapshot.info_code = touched.info_code
UNION ALL BY NAME
SELECT latest.* REPLACE (coalesce(merged.categories, latest.categories) AS categories)
FROM latest
LEFT JOIN merged USING (info_code);
