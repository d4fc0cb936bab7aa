-- Rows of one source whose pupil is not in the pupils source (ingest_known: the pupil ids
-- with a valid CPR in the current pupils files).
SELECT source_file, source_line
FROM raw_rows
WHERE source = $source AND pupil_id NOT IN (SELECT pupil_id FROM ingest_known)
ORDER BY source_file, source_line;
