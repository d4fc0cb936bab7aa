-- Stored explanations of some pupils in one run.
SELECT pupil_id, feature, feature_value, contribution, family, actionable
FROM explanations_pupil_term
WHERE run_id = $run_id AND pupil_id IN (SELECT unnest($pupils))
ORDER BY pupil_id, feature
