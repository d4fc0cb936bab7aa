-- Temporary tables of the staged identity store for one ingest (dropped when it ends):
-- the names of the pupils source's typed rows, and which of those rows passed validation.
CREATE OR REPLACE TEMP TABLE ingest_names (_seq BIGINT, first_name VARCHAR, last_name VARCHAR);
CREATE OR REPLACE TEMP TABLE ingest_valid_pupils (
    _seq BIGINT, pupil_id VARCHAR, school_code VARCHAR, class_label VARCHAR, enrolled_from DATE
);
