-- Warehouse tables every run needs. Later stages create theirs through
-- ews.warehouse.replace_rows. Everything here is keyed by term or run_id (a content hash of
-- the run's inputs), so a re-run of a term with the same files writes the same rows.
CREATE TABLE IF NOT EXISTS quarantine_rows (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    column_name VARCHAR,
    reason VARCHAR NOT NULL,
    raw_values VARCHAR
);
CREATE TABLE IF NOT EXISTS validation_results (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    column_name VARCHAR,
    success BOOLEAN NOT NULL,
    unexpected_count BIGINT,
    element_count BIGINT,
    severity VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_pupils (
    pupil_id VARCHAR NOT NULL, school_year VARCHAR NOT NULL, school_code VARCHAR NOT NULL,
    grade SMALLINT NOT NULL, class_label VARCHAR, sex VARCHAR, origin VARCHAR,
    birth_year SMALLINT, enrolled_from DATE NOT NULL, enrolled_to DATE,
    source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_absence (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR NOT NULL,
    period_start DATE NOT NULL, period_end DATE NOT NULL, school_days DOUBLE NOT NULL,
    illness_days DOUBLE NOT NULL, authorised_days DOUBLE NOT NULL,
    unauthorised_days DOUBLE NOT NULL, late_arrivals INTEGER NOT NULL,
    source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_tests (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR, grade SMALLINT NOT NULL,
    subject VARCHAR NOT NULL, test_date DATE NOT NULL, score DOUBLE NOT NULL,
    scale VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_marks (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR, grade SMALLINT NOT NULL,
    subject VARCHAR NOT NULL, mark_kind VARCHAR NOT NULL, mark_date DATE NOT NULL,
    mark SMALLINT NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_contacts (
    pupil_id VARCHAR NOT NULL, contact_date DATE NOT NULL, discipline VARCHAR NOT NULL,
    contact_type VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_support (
    pupil_id VARCHAR NOT NULL, support_type VARCHAR NOT NULL, start_date DATE NOT NULL,
    end_date DATE, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS clean_outcomes (
    pupil_id VARCHAR NOT NULL, outcome_definition VARCHAR NOT NULL, school_year VARCHAR NOT NULL,
    assessed_date DATE NOT NULL, outcome BOOLEAN NOT NULL,
    source_file VARCHAR, source_line BIGINT
);
-- The ingest's memory of what it loaded (pipelines/ingest.py, incremental by content). A file
-- whose bytes, source config and ingest code are unchanged is not read again: its typed rows,
-- its typing quarantine and its per-file check counts stay here. The checks that span files
-- (duplicate keys, unknown pupils) are re-evaluated in SQL over raw_rows; clean_* is built
-- from raw_rows minus the rows quarantined by the contracts.
CREATE TABLE IF NOT EXISTS raw_files (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL, checked_today DATE NOT NULL, max_event_date DATE,
    rows_read BIGINT NOT NULL, rows_typed BIGINT NOT NULL, extra_columns VARCHAR NOT NULL
);
-- Typed, pseudonymised rows of every loaded file (one wide table for every source kind;
-- a kind's columns that another kind lacks are NULL), with the verdict of the checks that
-- look at one file only (_local_reason NULL: passed) and two hashes of the row's unique key.
CREATE TABLE IF NOT EXISTS raw_rows (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL,
    pupil_id VARCHAR, birth_year BIGINT, school_code VARCHAR, grade BIGINT, class_label VARCHAR,
    sex VARCHAR, origin VARCHAR, enrolled_from DATE, enrolled_to DATE, period_start DATE,
    period_end DATE, school_days DOUBLE, illness_days DOUBLE, authorised_days DOUBLE,
    unauthorised_days DOUBLE, late_arrivals BIGINT, subject VARCHAR, test_date DATE,
    score DOUBLE, scale VARCHAR, mark_kind VARCHAR, mark_date DATE, mark BIGINT,
    contact_date DATE, discipline VARCHAR, contact_type VARCHAR, support_type VARCHAR,
    start_date DATE, end_date DATE, assessed_date DATE, outcome VARCHAR, school_year VARCHAR,
    _clean_school_year VARCHAR, _key_a UBIGINT, _key_b UBIGINT, _local_reason VARCHAR,
    _local_column VARCHAR
);
-- Pupil ids with a valid CPR in each pupils file, whether or not their row was loaded: the
-- pupils other sources may refer to.
CREATE TABLE IF NOT EXISTS raw_pupil_ids (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, pupil_id VARCHAR NOT NULL
);
-- Quarantined rows: step 'typing' per file (kept while the file is), step 'contracts' per
-- source (rebuilt when a file of the source or the known pupils change).
CREATE TABLE IF NOT EXISTS raw_quarantine (
    source VARCHAR NOT NULL, step VARCHAR NOT NULL, source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL, column_name VARCHAR, reason VARCHAR NOT NULL, raw_values VARCHAR
);
-- Check counts: per file for the checks of one file, per source (source_file NULL) for the
-- checks across files.
CREATE TABLE IF NOT EXISTS raw_checks (
    source VARCHAR NOT NULL, source_file VARCHAR, position INTEGER NOT NULL,
    expectation VARCHAR NOT NULL, column_name VARCHAR, success BOOLEAN NOT NULL,
    unexpected_count BIGINT NOT NULL, element_count BIGINT NOT NULL, severity VARCHAR NOT NULL
);
-- Per source: the known pupils its cross-file checks were last evaluated against.
CREATE TABLE IF NOT EXISTS raw_sources (
    source VARCHAR NOT NULL, known_fingerprint VARCHAR NOT NULL
);
