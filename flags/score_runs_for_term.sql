-- Runs that scored a term.
SELECT DISTINCT run_id FROM scores_pupil_term WHERE term = $term ORDER BY run_id
