-- Labels of a definition that comes from a source export (UPV or the municipality's
-- designation): the first assessment per pupil.
-- Parameters: $definition VARCHAR.
SELECT pupil_id, school_year AS cohort, assessed_date, outcome
FROM (
    SELECT pupil_id, school_year, assessed_date, outcome,
        row_number() OVER (PARTITION BY pupil_id ORDER BY assessed_date, school_year, outcome) AS pick
    FROM clean_outcomes
    WHERE outcome_definition = $definition
)
WHERE pick = 1
