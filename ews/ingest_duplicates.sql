-- Rows of the scratch table whose unique key repeats an earlier row's (earlier = smaller _seq,
-- i.e. file name, then line), with the line and file of that first row. The key is compared
-- through two independent 64-bit hashes (validation.contracts.key_hashes).
CREATE OR REPLACE TABLE ingest_duplicates AS
WITH firsts AS (
    SELECT _key_a, _key_b, min(_seq) AS first_seq
    FROM ingest_typed
    GROUP BY _key_a, _key_b
    HAVING count(*) > 1
)
SELECT later._seq, first.source_line AS duplicate_of, first.source_file AS duplicate_file
FROM ingest_typed AS later
JOIN firsts USING (_key_a, _key_b)
JOIN ingest_typed AS first ON first._seq = firsts.first_seq
WHERE later._seq > firsts.first_seq
ORDER BY later._seq;
