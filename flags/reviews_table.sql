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
