-- Whether a run has any explanation rows.
SELECT count(*) > 0 FROM explanations_pupil_term WHERE run_id = $run_id
