-- The flagged runs scored before the evaluating run's as-of date (one per term), with what
-- their lists were based on. Parameters: $as_of DATE.
SELECT f.run_id, any_value(f.term) AS term, any_value(s.as_of_date) AS as_of_date,
    any_value(f.list_basis) AS list_basis
FROM flags_pupil_term AS f
JOIN (SELECT DISTINCT run_id, as_of_date FROM scores_pupil_term) AS s USING (run_id)
WHERE s.as_of_date < $as_of
GROUP BY f.run_id
ORDER BY term
