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
