-- Rows of one source whose unique key repeats an earlier row's (earlier = file name, then
-- line, across every file of the source), with the line and file of that first row. Keys are
-- compared through two independent 64-bit hashes (validation.contracts.key_hashes).
-- The repeated keys are found first by a plain count per key (two integers); only their rows
-- are then compared to find each key's first row. Taking the first row of every key at once
-- (a min over a struct per key) took 214 s over the 317 M absence rows of the national bench;
-- this takes 30 s (docs/benchmarks.md). `keyed` is scanned twice rather than held in memory.
WITH keyed AS NOT MATERIALIZED (
    SELECT source_file, source_line, _key_a, _key_b
    FROM raw_rows
    WHERE source = $source AND _key_a IS NOT NULL
), repeated AS (
    SELECT _key_a, _key_b
    FROM keyed
    GROUP BY _key_a, _key_b
    HAVING count(*) > 1
), candidates AS (
    SELECT keyed.*
    FROM keyed
    SEMI JOIN repeated USING (_key_a, _key_b)
), firsts AS (
    SELECT _key_a, _key_b, min({'file': source_file, 'line': source_line}) AS first
    FROM candidates
    GROUP BY _key_a, _key_b
)
SELECT candidates.source_file, candidates.source_line, firsts.first.line AS duplicate_of,
       firsts.first.file AS duplicate_file
FROM candidates
JOIN firsts USING (_key_a, _key_b)
WHERE candidates.source_file <> firsts.first.file OR candidates.source_line <> firsts.first.line
ORDER BY candidates.source_file, candidates.source_line;
