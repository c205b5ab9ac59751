-- Views stored in the lake's catalog: any DuckDB that attached the lake reads them, with no
-- finews code. Names are unqualified, so they resolve in whatever alias the lake is attached as.

-- The newest state of every listing page: validators for conditional requests, last check.
CREATE OR REPLACE VIEW listing_state AS
SELECT * EXCLUDE (state_rank)
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY url ORDER BY checked_at DESC, run_id DESC)
               AS state_rank
    FROM listing_checks
)
WHERE state_rank = 1;

-- Post pages that failed and have not landed since, one row per URL. A page is retried by
-- later runs while its last failure is transient and it failed fewer than 5 times (the
-- retry_queue); the others are dead_pages: kept, with the last reason, for people to look at.
CREATE OR REPLACE VIEW page_failures AS
SELECT url,
       any_value(info_code) AS info_code,
       arg_max(category, failed_at) AS category,
       count(*) AS attempts,
       arg_max(reason, failed_at) AS last_reason,
       arg_max(status, failed_at) AS last_status,
       arg_max(coalesce(transient, false), failed_at) AS last_transient,
       min(failed_at) AS first_failed_at,
       max(failed_at) AS last_failed_at
FROM failures
WHERE stage IN ('fetch', 'extract')
  AND info_code IS NOT NULL
  AND info_code NOT IN (SELECT info_code FROM articles)
GROUP BY url;

CREATE OR REPLACE VIEW retry_queue AS
SELECT * FROM page_failures WHERE last_transient AND attempts < 5;

CREATE OR REPLACE VIEW dead_pages AS
SELECT * FROM page_failures WHERE NOT last_transient OR attempts >= 5;

-- Category pages whose listing failed since they last listed (200 or 304), one row per URL:
-- runs over all categories list them again while the last failure is transient and they failed
-- fewer than 5 times in a row. The home page's plan would not come back to them (their
-- outlets' home posts landed) and the sweep knows only pages that listed once.
CREATE OR REPLACE VIEW listing_retry_queue AS
SELECT f.url,
       count(*) AS attempts,
       arg_max(f.reason, f.failed_at) AS last_reason,
       max(f.failed_at) AS last_failed_at
FROM failures AS f
LEFT JOIN listing_state AS s ON s.url = f.url
WHERE f.info_code IS NULL
  AND f.stage IN ('category', 'listing')
  AND (s.checked_at IS NULL OR f.failed_at > s.checked_at)
GROUP BY f.url
HAVING arg_max(coalesce(f.transient, false), f.failed_at) AND count(*) < 5;
