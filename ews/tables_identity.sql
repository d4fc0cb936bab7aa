-- Every table of the identity store (state/versions/<v>/identity.duckdb): names and classes
-- per pseudonym, kept apart from the warehouse. Owned by ews/tables.py.

-- name: identity_pupils
CREATE TABLE IF NOT EXISTS identity_pupils (
    pupil_id VARCHAR PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, school_code VARCHAR,
    class_label VARCHAR, school_year VARCHAR
);

-- name: identity_rows
-- The names of every typed register row of the loaded files, so that an unchanged file need not
-- be read again when another one changes (kept apart from the warehouse).
CREATE TABLE IF NOT EXISTS identity_rows (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL,
    first_name VARCHAR, last_name VARCHAR
);
