-- Names and classes of some pupils (identity store only; used for authorised exports).
SELECT pupil_id, first_name, last_name, class_label, school_code
FROM identity_pupils
WHERE pupil_id IN (SELECT unnest($pupils))
ORDER BY pupil_id
