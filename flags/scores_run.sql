-- Every scored pupil of one run.
SELECT run_id, term, as_of_date, pupil_id, model_id, risk, tier, tier_step, network_id,
       school_code, grade
FROM scores_pupil_term
WHERE run_id = $run_id
ORDER BY network_id, risk DESC, pupil_id
