-- One pupil's score in one run.
SELECT term, as_of_date, risk, tier, network_id, school_code, grade, model_id
FROM scores_pupil_term
WHERE run_id = $run_id AND pupil_id = $pupil_id
