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
