-- Runs whose flag lists of a term are in the warehouse.
SELECT DISTINCT run_id FROM flags_pupil_term WHERE term = $term ORDER BY run_id
