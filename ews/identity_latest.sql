-- Per pupil: name and class of the latest valid register row. Latest = the latest enrolment
-- date, then the last source, file and line (a pupil is listed again in every school year's
-- register with the same enrolment date, and the latest year's row has the current class).
SELECT valid.pupil_id, names.first_name, names.last_name, valid.school_code, valid.class_label,
       valid.enrolled_from
FROM ingest_valid_pupils AS valid
JOIN identity_rows AS names USING (source, source_file, source_line)
QUALIFY row_number() OVER (PARTITION BY valid.pupil_id
                           ORDER BY valid.enrolled_from DESC, valid.source_rank DESC,
                                    valid.source_file DESC, valid.source_line DESC) = 1
ORDER BY valid.pupil_id;
