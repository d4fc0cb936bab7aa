-- Earlier terms' scores of some pupils (one row per pupil and term).
SELECT pupil_id, term, any_value(grade ORDER BY run_id) AS grade, avg(risk) AS risk
FROM scores_pupil_term
WHERE term < $term AND pupil_id IN (SELECT unnest($pupils))
GROUP BY pupil_id, term
ORDER BY pupil_id, term
