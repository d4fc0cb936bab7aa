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
