-- Every table of the warehouse (state/versions/<v>/warehouse.duckdb): names, columns, types,
-- keys. Owned by ews/tables.py, which creates them (ews.tables.create_tables) and refuses to
-- write a table not declared here. One block per table (-- name: <table>), with the ALTERs that
-- bring a file of an earlier code version up to date. Everything is keyed by term or run_id (a
-- content hash of the run's inputs), so a re-run of a term with the same files writes the same
-- rows.
--
-- Tables every run needs (ews.tables.RUN_TABLES, created when a version is staged): the
-- validation results, the quarantine, the clean tables and the ingest's memory (raw_*).

-- name: quarantine_rows
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

-- name: validation_results
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

-- name: clean_pupils
CREATE TABLE IF NOT EXISTS clean_pupils (
    pupil_id VARCHAR NOT NULL, school_year VARCHAR NOT NULL, school_code VARCHAR NOT NULL,
    grade SMALLINT NOT NULL, class_label VARCHAR, sex VARCHAR, origin VARCHAR,
    birth_year SMALLINT, enrolled_from DATE NOT NULL, enrolled_to DATE,
    source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_absence
CREATE TABLE IF NOT EXISTS clean_absence (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR NOT NULL,
    period_start DATE NOT NULL, period_end DATE NOT NULL, school_days DOUBLE NOT NULL,
    illness_days DOUBLE NOT NULL, authorised_days DOUBLE NOT NULL,
    unauthorised_days DOUBLE NOT NULL, late_arrivals INTEGER NOT NULL,
    source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_tests
CREATE TABLE IF NOT EXISTS clean_tests (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR, grade SMALLINT NOT NULL,
    subject VARCHAR NOT NULL, test_date DATE NOT NULL, score DOUBLE NOT NULL,
    scale VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_marks
CREATE TABLE IF NOT EXISTS clean_marks (
    pupil_id VARCHAR NOT NULL, school_code VARCHAR, grade SMALLINT NOT NULL,
    subject VARCHAR NOT NULL, mark_kind VARCHAR NOT NULL, mark_date DATE NOT NULL,
    mark SMALLINT NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_contacts
CREATE TABLE IF NOT EXISTS clean_contacts (
    pupil_id VARCHAR NOT NULL, contact_date DATE NOT NULL, discipline VARCHAR NOT NULL,
    contact_type VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_support
CREATE TABLE IF NOT EXISTS clean_support (
    pupil_id VARCHAR NOT NULL, support_type VARCHAR NOT NULL, start_date DATE NOT NULL,
    end_date DATE, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL
);

-- name: clean_outcomes
CREATE TABLE IF NOT EXISTS clean_outcomes (
    pupil_id VARCHAR NOT NULL, outcome_definition VARCHAR NOT NULL, school_year VARCHAR NOT NULL,
    assessed_date DATE NOT NULL, outcome BOOLEAN NOT NULL,
    source_file VARCHAR, source_line BIGINT
);

-- name: raw_files
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

-- name: raw_rows
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

-- name: raw_pupil_ids
-- Pupil ids with a valid CPR in each pupils file, whether or not their row was loaded: the
-- pupils other sources may refer to.
CREATE TABLE IF NOT EXISTS raw_pupil_ids (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, pupil_id VARCHAR NOT NULL
);

-- name: raw_quarantine
-- Quarantined rows: step 'typing' per file (kept while the file is), step 'contracts' per
-- source (rebuilt when a file of the source or the known pupils change).
CREATE TABLE IF NOT EXISTS raw_quarantine (
    source VARCHAR NOT NULL, step VARCHAR NOT NULL, source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL, column_name VARCHAR, reason VARCHAR NOT NULL, raw_values VARCHAR
);

-- name: raw_checks
-- Check counts: per file for the checks of one file, per source (source_file NULL) for the
-- checks across files.
CREATE TABLE IF NOT EXISTS raw_checks (
    source VARCHAR NOT NULL, source_file VARCHAR, position INTEGER NOT NULL,
    expectation VARCHAR NOT NULL, column_name VARCHAR, success BOOLEAN NOT NULL,
    unexpected_count BIGINT NOT NULL, element_count BIGINT NOT NULL, severity VARCHAR NOT NULL
);

-- name: raw_duplicates
-- Per source: the rows whose unique key repeats an earlier row's (earlier = file name, then line),
-- with that first row's line and file and the key's two hashes. Kept between runs so that a run
-- compares again only the keys of the files it read, changed or removed (ews/ingest_duplicates.sql).
CREATE TABLE IF NOT EXISTS raw_duplicates (
    source VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_line BIGINT NOT NULL,
    duplicate_of BIGINT NOT NULL, duplicate_file VARCHAR NOT NULL, _key_a UBIGINT NOT NULL,
    _key_b UBIGINT NOT NULL
);

-- name: raw_sources
-- Per source: the known pupils its cross-file checks were last evaluated against.
CREATE TABLE IF NOT EXISTS raw_sources (
    source VARCHAR NOT NULL, known_fingerprint VARCHAR NOT NULL
);

-- name: features_pupil_term
-- As-of features per pupil (features/build.py): the key columns here, then one DOUBLE column per
-- feature of features/catalogue.py (ews.tables.table_ddl fills the marker below with them).
CREATE TABLE IF NOT EXISTS features_pupil_term (
    pupil_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, term VARCHAR NOT NULL,
    grade BIGINT NOT NULL, school_code VARCHAR NOT NULL, network_id VARCHAR
    /* feature columns */
);

-- name: scores_pupil_term
-- Calibrated risk per pupil and term (models/scoring.py).
CREATE TABLE IF NOT EXISTS scores_pupil_term (
    run_id VARCHAR NOT NULL, term VARCHAR NOT NULL, as_of_date DATE NOT NULL,
    pupil_id VARCHAR NOT NULL, model_id VARCHAR NOT NULL, risk DOUBLE NOT NULL,
    tier VARCHAR NOT NULL, tier_step VARCHAR NOT NULL, network_id VARCHAR,
    school_code VARCHAR NOT NULL, grade BIGINT NOT NULL, rank_in_network BIGINT NOT NULL
);

-- name: explanations_pupil_term
-- SHAP contributions per pupil and feature (models/explain.py).
CREATE TABLE IF NOT EXISTS explanations_pupil_term (
    run_id VARCHAR NOT NULL,
    term VARCHAR,
    as_of_date DATE,
    pupil_id VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    feature_value DOUBLE,          -- NULL: missing in the data, never zero
    contribution DOUBLE NOT NULL,  -- SHAP value, log-odds of the explained model
    family VARCHAR NOT NULL,
    actionable BOOLEAN NOT NULL,
    base_value DOUBLE NOT NULL,
    model_id VARCHAR NOT NULL
);

-- name: explanations_family_term
CREATE TABLE IF NOT EXISTS explanations_family_term (
    run_id VARCHAR NOT NULL,
    term VARCHAR,
    pupil_id VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    contribution DOUBLE NOT NULL,
    top_feature VARCHAR NOT NULL,
    top_contribution DOUBLE NOT NULL,
    base_value DOUBLE NOT NULL,
    model_output DOUBLE NOT NULL,  -- raw output (log-odds) the contributions explain
    model_id VARCHAR NOT NULL
);

-- name: models
-- The model registry: one row per trained model (model_id is a content hash of training
-- data, model configuration and code version).
CREATE TABLE IF NOT EXISTS models (
    model_id VARCHAR PRIMARY KEY,
    term VARCHAR NOT NULL,
    as_of_date DATE NOT NULL,
    outcome_definition VARCHAR NOT NULL,
    training_first_cohort VARCHAR NOT NULL,
    training_last_cohort VARCHAR NOT NULL,
    training_cohorts VARCHAR NOT NULL,
    evaluation_cohorts VARCHAR NOT NULL,
    label_cutoff DATE NOT NULL,
    training_rows BIGINT NOT NULL,
    training_pupils BIGINT NOT NULL,
    evaluation_rows BIGINT NOT NULL,
    model_config_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    data_snapshot VARCHAR NOT NULL,
    seed BIGINT NOT NULL,
    feature_names VARCHAR NOT NULL,
    metrics_json VARCHAR NOT NULL,
    card_markdown VARCHAR,
    card_html VARCHAR,
    -- the winning candidate of model selection, its calibration, and every candidate's
    -- validation figures per rolling origin (models/selection.py)
    candidate VARCHAR,
    calibration VARCHAR,
    selection_json VARCHAR
);

-- name: flags_pupil_term
-- The flag lists (flags/selection.py).
CREATE TABLE IF NOT EXISTS flags_pupil_term (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,
    as_of_date DATE,
    model_id VARCHAR,
    pupil_id VARCHAR NOT NULL,
    network_id VARCHAR NOT NULL,
    school_code VARCHAR,
    grade SMALLINT,
    status VARCHAR NOT NULL,          -- 'ny', 'fortsat', 'ikke_laengere'
    list_rank INTEGER,                -- 1 = highest risk on the network's list; NULL if not on it
    risk DOUBLE,                      -- this term's calibrated risk (NULL: not scored here)
    tier VARCHAR,
    tier_step VARCHAR,
    previous_risk DOUBLE,
    risk_change DOUBLE,
    trajectory VARCHAR,               -- 'stigende', 'faldende', 'stabil', 'ingen_tidligere'
    path_pattern VARCHAR,             -- 'tidlig_starter', 'sen_starter' or NULL
    reasons_da VARCHAR NOT NULL,      -- JSON list of reasons (Danish text, English text, values)
    context_da VARCHAR NOT NULL,      -- JSON list of context items (not reasons)
    reason_families VARCHAR NOT NULL, -- JSON list of families of the reasons
    disciplines VARCHAR NOT NULL,     -- JSON list of discipline codes
    review_required BOOLEAN NOT NULL,
    in_network BOOLEAN NOT NULL,      -- false: no longer scored in this network (not named in exports)
    selection VARCHAR NOT NULL,       -- how the list was chosen (mode, capacity, threshold)
    list_basis VARCHAR NOT NULL       -- 'model', or 'regel:<rule>' when the model did not pass the gate
);
-- warehouses written before list_basis existed: their lists were the model's
ALTER TABLE flags_pupil_term ADD COLUMN IF NOT EXISTS list_basis VARCHAR DEFAULT 'model';

-- name: reviews_decisions
-- The review app's reviews, copied by every run from app.sqlite (read-only) so that flags,
-- decisions and later outcomes can be joined in SQL. Pseudonyms and codes only: no reviewer
-- name, no free text; of the person responsible for the follow-up only the role.
-- The whole table is replaced by each run (the app's store is the record; this is its copy).
CREATE TABLE IF NOT EXISTS reviews_decisions (
    review_id BIGINT PRIMARY KEY,
    pupil_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,            -- the term of the flag list reviewed
    run_id VARCHAR NOT NULL,          -- the run that made the flag
    network_id VARCHAR,
    school_code VARCHAR,
    decision VARCHAR NOT NULL,        -- dashboards.labels.DECISIONS
    dismiss_reason VARCHAR,           -- dashboards.labels.DISMISS_REASONS (decision 'afvist')
    step VARCHAR,                     -- the step on the indsatstrappe (decision 'indsatstrappe')
    reviewer_role VARCHAR NOT NULL,
    reviewed_at TIMESTAMP NOT NULL,   -- UTC
    responsible_role VARCHAR,         -- role of the person responsible for the follow-up
    next_step_date DATE               -- when the next step is due
);

-- name: scores_outcome_evaluation
-- Earlier models against the outcomes that arrived (models/prospective.py), one row per
-- evaluating term, model, scored term, outcome definition and grade at scoring time (NULL: all).
-- Replaced per evaluating term, so the history over terms stays.
CREATE TABLE IF NOT EXISTS scores_outcome_evaluation (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,                 -- the evaluating run's term
    as_of_date DATE NOT NULL,              -- outcomes assessed later had not arrived
    model_id VARCHAR NOT NULL,
    model_term VARCHAR NOT NULL,           -- the term the model was trained for
    model_outcome VARCHAR NOT NULL,        -- the definition the model was trained on (name@vN)
    scored_term VARCHAR NOT NULL,
    scored_as_of DATE NOT NULL,
    outcome_definition VARCHAR NOT NULL,   -- the definition of these outcomes (name@vN)
    own_definition BOOLEAN NOT NULL,       -- false: a bridge across definitions, not judged
    grade SMALLINT,                        -- at scoring time; NULL = all grades
    rows BIGINT NOT NULL,
    pupils BIGINT NOT NULL,
    positives BIGINT NOT NULL,
    roc_auc DOUBLE, roc_auc_low DOUBLE, roc_auc_high DOUBLE,
    precision_at_capacity DOUBLE, precision_at_capacity_low DOUBLE, precision_at_capacity_high DOUBLE,
    list_length BIGINT,
    calibration_error DOUBLE,
    brier DOUBLE,
    mean_risk DOUBLE,
    outcome_rate DOUBLE,
    promised_roc_auc DOUBLE,
    promised_precision_at_capacity DOUBLE,
    promised_calibration_error DOUBLE,
    promised_roc_auc_se DOUBLE,            -- the promise's own sampling error (Hanley-McNeil)
    promised_precision_at_capacity_se DOUBLE,
    dropped VARCHAR                        -- judged metrics that dropped beyond both figures' error
);

-- name: flags_outcomes
-- Outcomes of flagged and unflagged, confirmed and dismissed pupils (flags/outcomes.py):
-- descriptive counts, never an effect. Replaced per evaluating term.
CREATE TABLE IF NOT EXISTS flags_outcomes (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,                -- the evaluating run's term
    as_of_date DATE NOT NULL,
    scored_run_id VARCHAR NOT NULL,
    scored_term VARCHAR NOT NULL,
    scored_as_of DATE NOT NULL,
    list_basis VARCHAR,                   -- 'model' or 'regel:<rule>'
    outcome_definition VARCHAR NOT NULL,  -- name@vN
    pupil_group VARCHAR NOT NULL,           -- flags.outcomes.GROUPS
    pupils BIGINT NOT NULL,
    adverse BIGINT NOT NULL,
    share DOUBLE NOT NULL
);

-- name: clean_exclusions
-- The exclusions from screening in effect for the run (ews.exclusions; pseudonym and date, no
-- reason): build_features leaves these pupils out. Replaced by every run.
CREATE TABLE IF NOT EXISTS clean_exclusions (
    pupil_id VARCHAR NOT NULL,
    excluded_on DATE NOT NULL
);

-- name: flags_withdrawn
-- Flags withdrawn because the pupil was taken out of screening (ews.exclusions), once each.
CREATE TABLE IF NOT EXISTS flags_withdrawn (
    pupil_id VARCHAR NOT NULL,
    flagged_run_id VARCHAR NOT NULL,
    flagged_term VARCHAR NOT NULL,
    network_id VARCHAR,
    school_code VARCHAR,
    reason VARCHAR NOT NULL,
    withdrawn_by_run VARCHAR NOT NULL,
    withdrawn_term VARCHAR NOT NULL,
    excluded_on DATE NOT NULL
);
