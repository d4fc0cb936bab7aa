-- name: row_hashes
-- Per loaded row of the given files: its pupil and a hash of its content (not its line or the
-- checks' verdict), to tell, after a corrected export is loaded, which pupils' rows changed.
SELECT source, source_file, pupil_id, hash(t) AS row_hash
FROM (
    SELECT * EXCLUDE (source_line, _key_a, _key_b, _local_reason, _local_column, _clean_school_year)
    FROM raw_rows
    WHERE pupil_id IS NOT NULL AND (source, source_file) IN (SELECT source, source_file FROM changed_files)
) AS t;

-- name: replaced
-- Rows of a pupil that were in a file before and are not in its new version (changed or removed).
SELECT b.source, b.source_file, b.pupil_id, count(*) AS rows_replaced
FROM before_rows AS b
WHERE NOT EXISTS (SELECT 1 FROM after_rows AS a WHERE a.source = b.source AND a.source_file = b.source_file
                  AND a.pupil_id = b.pupil_id AND a.row_hash = b.row_hash)
GROUP BY ALL
ORDER BY ALL;
