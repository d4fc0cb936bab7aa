-- Rows of one source whose unique key repeats an earlier row's (earlier = file name, then
-- line, across every file of the source), with the line and file of that first row. Keys are
-- compared through two independent 64-bit hashes (validation.contracts.key_hashes).
WITH keyed AS (
    SELECT source_file, source_line, _key_a, _key_b
    FROM raw_rows
    WHERE source = $source AND _key_a IS NOT NULL
), firsts AS (
    SELECT _key_a, _key_b, min({'file': source_file, 'line': source_line}) AS first
    FROM keyed
    GROUP BY _key_a, _key_b
    HAVING count(*) > 1
)
SELECT keyed.source_file, keyed.source_line, firsts.first.line AS duplicate_of,
       firsts.first.file AS duplicate_file
FROM keyed
JOIN firsts USING (_key_a, _key_b)
WHERE keyed.source_file <> firsts.first.file OR keyed.source_line <> firsts.first.line
ORDER BY keyed.source_file, keyed.source_line;
