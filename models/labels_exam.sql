-- The leaving-exam grade requirement, derived from the leaving-exam marks: the adverse
-- outcome is a mark below 02 in Danish or in mathematics. A pupil needs both marks of the
-- same sitting (school year) to be labelled; the first sitting counts.
WITH exam AS (
    SELECT pupil_id,
        CASE WHEN month(mark_date) >= 8 THEN year(mark_date) ELSE year(mark_date) - 1 END AS start_year,
        subject, mark, mark_date
    FROM clean_marks
    WHERE mark_kind = 'afgangsproeve' AND subject IN ('dansk', 'matematik')
),
sitting AS (
    SELECT pupil_id, start_year,
        max(mark_date) AS assessed_date,
        bool_or(mark < 2) AS outcome,
        count(DISTINCT subject) AS subjects
    FROM exam
    GROUP BY pupil_id, start_year
)
SELECT pupil_id,
    printf('%d/%02d', start_year, (start_year + 1) % 100) AS cohort,
    assessed_date, outcome
FROM (
    SELECT *, row_number() OVER (PARTITION BY pupil_id ORDER BY start_year) AS pick
    FROM sitting
    WHERE subjects = 2
)
WHERE pick = 1
