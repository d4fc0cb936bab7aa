-- Rows of one source whose unique key repeats an earlier row's (earlier = file name, then
-- line, across every file of the source), with the line and file of that first row. Keys are
-- compared through two independent 64-bit hashes (validation.contracts.key_hashes). The
-- verdicts are kept in raw_duplicates (ews/tables_warehouse.sql) between runs.
--
-- A run that read every file of the source compares every key (scope `every_key`). A run that
-- kept some files compares only the keys whose rows can have changed (`keys_to_compare`; their
-- rows kept by `changed_rows`, scope `changed_keys`): the keys of the rows it read, and those of
-- the kept verdicts that name a file it read again or removed, or whose first row was in a file
-- retention has removed since (retention removes a file's own verdicts with its rows). Every
-- other key has the same rows as when its verdict was made, so the verdict stands. On the
-- national bench's 317 M absence rows, comparing every key took 30 s (docs/benchmarks.md).

-- name: keys_to_compare
CREATE OR REPLACE TEMP TABLE _duplicate_keys AS
SELECT DISTINCT _key_a, _key_b
FROM raw_rows
WHERE source = $source AND _key_a IS NOT NULL AND source_file IN (SELECT unnest($changed::VARCHAR[]))
UNION
SELECT _key_a, _key_b
FROM raw_duplicates
WHERE source = $source
  AND (source_file IN (SELECT unnest($changed::VARCHAR[]))
       OR duplicate_file IN (SELECT unnest($changed::VARCHAR[]))
       OR duplicate_file NOT IN (SELECT source_file FROM raw_files WHERE source = $source));

-- name: every_key
CREATE OR REPLACE TEMP VIEW _duplicate_scope AS
SELECT source, source_file, source_line, _key_a, _key_b
FROM raw_rows;

-- name: changed_rows
-- The rows of the keys to compare, kept once: `compare` reads its scope twice, and reading the
-- national bench's 293 M absence rows twice for 14.6 M keys took 22.6 s against 9.1 + 1.5 s
-- (docs/benchmarks.md). Every key's rows are few, so this table is the size of the change.
CREATE OR REPLACE TEMP TABLE _duplicate_rows AS
SELECT source, source_file, source_line, _key_a, _key_b
FROM raw_rows
SEMI JOIN _duplicate_keys USING (_key_a, _key_b)
WHERE source = $source;

-- name: changed_keys
CREATE OR REPLACE TEMP VIEW _duplicate_scope AS
SELECT source, source_file, source_line, _key_a, _key_b
FROM _duplicate_rows;

-- name: forget_changed_keys
DELETE FROM raw_duplicates
WHERE source = $source AND (_key_a, _key_b) IN (SELECT (_key_a, _key_b) FROM _duplicate_keys);

-- name: compare
-- The repeated keys are found first by a plain count per key (two integers); only their rows
-- are then compared to find each key's first row. Taking the first row of every key at once
-- (a min over a struct per key) took 214 s over the 317 M absence rows of the national bench;
-- this takes 30 s (docs/benchmarks.md). `keyed` is scanned twice rather than held in memory.
INSERT INTO raw_duplicates
WITH keyed AS NOT MATERIALIZED (
    SELECT source_file, source_line, _key_a, _key_b
    FROM _duplicate_scope
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
SELECT $source AS source, candidates.source_file, candidates.source_line, firsts.first.line AS duplicate_of,
       firsts.first.file AS duplicate_file, _key_a, _key_b
FROM candidates
JOIN firsts USING (_key_a, _key_b)
WHERE candidates.source_file <> firsts.first.file OR candidates.source_line <> firsts.first.line;

-- name: verdicts
SELECT source_file, source_line, duplicate_of, duplicate_file
FROM raw_duplicates
WHERE source = $source
ORDER BY source_file, source_line;
