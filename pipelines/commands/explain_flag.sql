-- One pupil's row on the run's flag list, if any.
SELECT status, trajectory, path_pattern, reasons_da, disciplines
FROM flags_pupil_term
WHERE run_id = $run_id AND pupil_id = $pupil_id
