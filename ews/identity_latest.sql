-- Per pupil: name and class of the latest valid register row. Latest = the latest enrolment
-- date, then the last file (a pupil is listed again in every school year's register with the
-- same enrolment date, and the latest year's row has the current class).
SELECT valid.pupil_id, names.first_name, names.last_name, valid.school_code, valid.class_label,
       valid.enrolled_from
FROM ingest_valid_pupils AS valid
JOIN ingest_names AS names USING (_seq)
QUALIFY row_number() OVER (PARTITION BY valid.pupil_id
                           ORDER BY valid.enrolled_from DESC, valid._seq DESC) = 1
ORDER BY valid.pupil_id;
