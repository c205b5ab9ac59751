-- The catalog: views over the Parquet files under {root}. Nothing here holds data, so the
-- .duckdb file can be deleted and rebuilt at any time (finews rebuilds it after every run).

CREATE OR REPLACE VIEW article_versions AS
SELECT * EXCLUDE (version_rank)
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY info_code, content_hash
                              ORDER BY fetched_at, run_id) AS version_rank
    FROM read_parquet('{root}/articles/**/*.parquet', union_by_name = true,
                      hive_partitioning = false)
)
WHERE version_rank = 1;

CREATE OR REPLACE VIEW sightings AS
SELECT * FROM read_parquet('{root}/sightings/**/*.parquet', union_by_name = true,
                           hive_partitioning = false);

CREATE OR REPLACE VIEW articles AS
WITH latest AS (
    SELECT * EXCLUDE (latest_rank)
    FROM (
        SELECT *,
               row_number() OVER (PARTITION BY info_code
                                  ORDER BY fetched_at DESC, run_id DESC) AS latest_rank
        FROM article_versions
    )
    WHERE latest_rank = 1
),
seen AS (
    SELECT info_code, unnest(categories) AS category FROM article_versions
    UNION ALL
    SELECT info_code, category FROM sightings WHERE category IS NOT NULL
),
merged AS (
    SELECT info_code, list_sort(list_distinct(list(category))) AS categories
    FROM seen
    GROUP BY info_code
)
SELECT latest.* REPLACE (coalesce(merged.categories, latest.categories) AS categories)
FROM latest
LEFT JOIN merged USING (info_code);

CREATE OR REPLACE VIEW fetch_log AS
SELECT * FROM read_parquet('{root}/fetch_log/**/*.parquet', union_by_name = true,
                           hive_partitioning = false);

CREATE OR REPLACE VIEW failures AS
SELECT * FROM read_parquet('{root}/failures/**/*.parquet', union_by_name = true,
                           hive_partitioning = false);

CREATE OR REPLACE VIEW runs AS
SELECT * FROM read_parquet('{root}/runs/**/*.parquet', union_by_name = true,
                           hive_partitioning = false);
