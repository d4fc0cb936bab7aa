-- Tables of models/explain.py; created typed here, filled by ews.warehouse.replace_rows.
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
