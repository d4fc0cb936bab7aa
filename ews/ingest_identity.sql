-- Temporary table of the staged identity store for one ingest (dropped when it ends): the
-- register rows that passed validation, whose names may reach identity_pupils.
CREATE OR REPLACE TEMP TABLE ingest_valid_pupils (
    source VARCHAR, source_rank INTEGER, source_file VARCHAR, source_line BIGINT,
    pupil_id VARCHAR, school_code VARCHAR, class_label VARCHAR, enrolled_from DATE
);
