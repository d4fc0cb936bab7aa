-- The model used by the latest scored term (or by the given term when $term is set).
SELECT s.model_id, s.term
FROM scores_pupil_term AS s
JOIN models AS m USING (model_id)
WHERE $term IS NULL OR s.term = $term
GROUP BY s.model_id, s.term
ORDER BY s.term DESC, s.model_id
LIMIT 1
