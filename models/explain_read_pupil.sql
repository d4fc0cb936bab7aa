-- One pupil's stored explanation in one run, largest contributions first.
SELECT run_id, term, as_of_date, pupil_id, feature, feature_value, contribution, family,
       actionable, base_value, model_id
FROM explanations_pupil_term
WHERE run_id = $run_id AND pupil_id = $pupil_id
ORDER BY contribution DESC, feature
