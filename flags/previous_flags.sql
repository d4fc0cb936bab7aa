-- Pupils on a network's list in an earlier run (new or still flagged then).
SELECT pupil_id, network_id, school_code, grade
FROM flags_pupil_term
WHERE run_id = $run_id AND status IN ('ny', 'fortsat')
