-- Pupils enrolled on each as-of date in the given grades, as pupil_features.sql's `enrolment`
-- finds them (before picking one school per pupil, so a pupil enrolled twice counts twice):
-- the rows each as-of date adds to a features query, known before the query runs.
--
-- Parameters: $as_of_dates DATE[], $school_years VARCHAR[] (parallel lists), $grades INTEGER[].
WITH as_of_list AS (
    SELECT
        unnest($as_of_dates::DATE[]) AS as_of_date,
        unnest($school_years::VARCHAR[]) AS school_year
)
SELECT a.as_of_date, count(p.pupil_id) AS pupils
FROM as_of_list AS a
LEFT JOIN clean_pupils AS p
    ON p.school_year = a.school_year
    AND p.enrolled_from < a.as_of_date
    AND (p.enrolled_to IS NULL OR p.enrolled_to >= a.as_of_date)
    AND list_contains($grades::INTEGER[], p.grade)
GROUP BY a.as_of_date
ORDER BY a.as_of_date
