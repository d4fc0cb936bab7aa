-- One pupil's stored features as of a date (to compute an explanation again).
SELECT *
FROM features_pupil_term
WHERE pupil_id = $pupil_id AND as_of_date = $as_of_date
