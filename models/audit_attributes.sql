-- Sex and origin per evaluated pupil (their latest known value), for the fairness audit
-- only: never a model input. Reads the registered frame _audit_pupils (pupil_id).
SELECT a.pupil_id,
    arg_max(p.sex, p.school_year) FILTER (WHERE p.sex IS NOT NULL) AS sex,
    arg_max(p.origin, p.school_year) FILTER (WHERE p.origin IS NOT NULL) AS origin
FROM _audit_pupils AS a
LEFT JOIN clean_pupils AS p USING (pupil_id)
GROUP BY a.pupil_id
