-- Reference values per grade and feature over every scored pupil of a run: the median and
-- the share of pupils with a positive value (used for yes/no features and support levels).
SELECT s.grade, e.feature, median(e.feature_value) AS median,
       avg(CASE WHEN e.feature_value > 0 THEN 1.0 ELSE 0.0 END) AS share, count(*) AS pupils
FROM explanations_pupil_term e
JOIN scores_pupil_term s ON s.run_id = e.run_id AND s.pupil_id = e.pupil_id
WHERE e.run_id = $run_id AND e.feature_value IS NOT NULL
GROUP BY s.grade, e.feature
ORDER BY s.grade, e.feature
