-- Per pupil of a run: the largest gap between the recorded model output and
-- (a) base value + feature contributions, (b) base value + family totals.
WITH features AS (
    SELECT pupil_id, sum(contribution) + any_value(base_value) AS explained
    FROM explanations_pupil_term
    WHERE run_id = $run_id
    GROUP BY pupil_id
), families AS (
    SELECT pupil_id, sum(contribution) + any_value(base_value) AS explained,
           any_value(model_output) AS model_output
    FROM explanations_family_term
    WHERE run_id = $run_id
    GROUP BY pupil_id
)
SELECT features.pupil_id,
       greatest(abs(features.explained - families.model_output),
                abs(families.explained - families.model_output)) AS gap
FROM features
LEFT JOIN families USING (pupil_id)
ORDER BY features.pupil_id
