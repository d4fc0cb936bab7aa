-- The pupils other sources may refer to: every pupil id with a valid CPR in a current file of
-- a configured pupils source, whether or not its register row was loaded.
CREATE OR REPLACE TEMP TABLE ingest_known AS
SELECT DISTINCT ids.pupil_id
FROM raw_pupil_ids AS ids
JOIN raw_files AS files USING (source, source_file)
WHERE ids.source IN (SELECT unnest($sources::VARCHAR[]));
