-- The scores of every term scored before the evaluating run's as-of date, with the model that
-- made them. Parameters: $as_of DATE.
SELECT s.model_id, s.term, s.as_of_date, s.pupil_id, s.network_id, s.school_code, s.grade, s.risk
FROM scores_pupil_term AS s
WHERE s.as_of_date < $as_of AND s.risk IS NOT NULL
ORDER BY s.term, s.pupil_id
