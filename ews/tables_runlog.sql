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
