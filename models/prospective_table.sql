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
