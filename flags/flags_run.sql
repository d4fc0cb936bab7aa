-- One run's flag lists, in list order (flagged first by rank, then those no longer flagged).
SELECT *
FROM flags_pupil_term
WHERE run_id = $run_id
ORDER BY network_id, status = 'ikke_laengere', list_rank NULLS LAST, risk DESC NULLS LAST, pupil_id
