-- What the training and held-out rows of a model can depend on: every clean table as it could
-- have been known on $cut (the latest as-of date the rows use), with the same cut as the
-- look-ahead check (features/leakage_cut.sql): rows dated on or after $cut are left out and
-- end dates on or after it count as open. Per table: row count and an order-independent sum
-- of row hashes. Bookkeeping columns (which file and line a row came from) are left out, so a
-- re-export of the same rows under another file name does not retrain the model.
SELECT 'clean_pupils' AS table_name, count(*) AS row_count, coalesce(sum(hash(t)::HUGEINT), 0) AS row_hash
FROM (
    SELECT * EXCLUDE (source_file, source_line)
        REPLACE (CASE WHEN enrolled_to >= $cut THEN NULL ELSE enrolled_to END AS enrolled_to)
    FROM clean_pupils
    WHERE enrolled_from < $cut
        AND make_date(CAST(left(school_year, 4) AS INTEGER), 8, 1) <= $cut
) AS t
UNION ALL
SELECT 'clean_absence', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (SELECT * EXCLUDE (source_file, source_line) FROM clean_absence WHERE period_end < $cut) AS t
UNION ALL
SELECT 'clean_tests', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (SELECT * EXCLUDE (source_file, source_line) FROM clean_tests WHERE test_date < $cut) AS t
UNION ALL
SELECT 'clean_marks', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (SELECT * EXCLUDE (source_file, source_line) FROM clean_marks WHERE mark_date < $cut) AS t
UNION ALL
SELECT 'clean_contacts', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (SELECT * EXCLUDE (source_file, source_line) FROM clean_contacts WHERE contact_date < $cut) AS t
UNION ALL
SELECT 'clean_support', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (
    SELECT * EXCLUDE (source_file, source_line)
        REPLACE (CASE WHEN end_date >= $cut THEN NULL ELSE end_date END AS end_date)
    FROM clean_support
    WHERE start_date < $cut
) AS t
UNION ALL
SELECT 'clean_outcomes', count(*), coalesce(sum(hash(t)::HUGEINT), 0)
FROM (SELECT * EXCLUDE (source_file, source_line) FROM clean_outcomes WHERE assessed_date < $cut) AS t
ORDER BY table_name
