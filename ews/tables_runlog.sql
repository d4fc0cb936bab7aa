-- Every table of the run log (state/runs.duckdb). Owned by ews/tables.py.
-- The run log: one row per execution of a run, kept apart from the
-- warehouse so that a failed run is recorded while the warehouse stays as it was.

-- name: runs
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    term VARCHAR NOT NULL,
    as_of_date DATE NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    config_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    data_snapshot VARCHAR,
    message VARCHAR,
    manifest_path VARCHAR,
    PRIMARY KEY (run_id, attempt)
);
-- who ran an execution, so that a later run can tell a killed attempt from a live one
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS process_start BIGINT;

-- name: run_sources
CREATE TABLE IF NOT EXISTS run_sources (
    run_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL
);

-- name: retention_log
-- What retention deleted (ews.retention): counts per data item, never an identity.
CREATE TABLE IF NOT EXISTS retention_log (
    deleted_at TIMESTAMP NOT NULL,
    today DATE NOT NULL,
    item VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    rows_deleted BIGINT NOT NULL,
    triggered_by VARCHAR NOT NULL
);

-- name: corrections
-- Rows of a pupil that a corrected export replaced or removed (pipelines.corrections): pseudonyms
-- and counts only, for the pupil's history and the subject-access report.
CREATE TABLE IF NOT EXISTS corrections (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    pupil_id VARCHAR NOT NULL,
    rows_replaced BIGINT NOT NULL
);
