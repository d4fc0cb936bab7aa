-- A synthetic warehouse of the shape the app reads (pseudonyms only, no real person), for
-- tests, benchmarks and trying the app before the pipeline has run. Deterministic: every
-- "random" number is a hash of the pupil, the feature and the term.

-- name: create_pupils
CREATE OR REPLACE TEMP TABLE sample_pupils AS
SELECT
    i AS n,
    substr(md5('sample-pupil-' || i::VARCHAR), 1, 16) AS pupil_id,
    'S' || lpad(((i % $schools) + 1)::VARCHAR, 4, '0') AS school_code,
    'N' || lpad(((i % $schools) // $schools_per_network + 1)::VARCHAR, 3, '0') AS network_id,
    (5 + (i // $schools) % 5)::SMALLINT AS grade,
    (hash(i, 'latent') % 10000) / 10000.0 AS latent
FROM range($pupils) t(i);

-- name: insert_features_long
INSERT INTO sample_features_long
SELECT p.pupil_id, $as_of_date::DATE AS as_of_date, $term AS term, f.feature,
    CASE f.unit
        WHEN 'pct' THEN round(25 * p.latent * p.latent * (0.6 + u) + 3 * u, 1)
        WHEN 'pp' THEN round((u - 0.5) * 4 + 2 * (p.latent - 0.5), 1)
        WHEN 'dage' THEN round(30 * p.latent * u)
        WHEN 'antal' THEN floor(4 * p.latent * u * u)
        WHEN 'z' THEN round((u - 0.5) * 2.5 - 1.5 * (p.latent - 0.5), 2)
        WHEN 'flag' THEN CASE WHEN u < p.latent * 0.6 THEN 1 ELSE 0 END
        WHEN 'karakter' THEN round(9 - 6 * p.latent + (u - 0.5) * 3, 1)
        ELSE floor(3 * u)
    END::DOUBLE AS value
FROM sample_pupils p
CROSS JOIN (SELECT unnest($features) AS feature, unnest($units) AS unit) f
CROSS JOIN LATERAL (SELECT (hash(p.pupil_id, f.feature, $term_index) % 10000) / 10000.0 AS u) r;

-- name: insert_scores
INSERT INTO scores_pupil_term BY NAME
WITH raw AS (
    SELECT p.pupil_id, p.school_code, p.network_id, p.grade,
        1 / (1 + exp(-(-3.4 + 5.5 * p.latent * p.latent + 0.35 * $term_index * (p.latent - 0.4)
            + ((hash(p.pupil_id, $term_index) % 1000) / 1000.0 - 0.5) * 0.8))) AS risk
    FROM sample_pupils p
)
SELECT $run_id AS run_id, pupil_id, $term AS term, $as_of_date::DATE AS as_of_date, $model_id AS model_id,
    risk,
    CASE WHEN risk >= 0.75 THEN 'meget høj' WHEN risk >= 0.55 THEN 'høj'
         WHEN risk >= 0.3 THEN 'forhøjet' ELSE 'lav' END AS tier,
    CASE WHEN risk >= 0.75 THEN 'Tværfaglig indsats med plan og opfølgning'
         WHEN risk >= 0.55 THEN 'Forebyggende indsats med kontaktperson'
         WHEN risk >= 0.3 THEN 'Drøftelse i netværket' ELSE 'Almen praksis i klassen' END AS tier_step,
    row_number() OVER (PARTITION BY network_id ORDER BY risk DESC, pupil_id) AS rank_in_network,
    network_id, school_code, grade
FROM raw;

-- name: insert_flags
INSERT INTO flags_pupil_term BY NAME
WITH current AS (
    SELECT * FROM scores_pupil_term WHERE run_id = $run_id AND rank_in_network <= $capacity
),
previous AS (
    SELECT pupil_id FROM flags_pupil_term WHERE run_id = $previous_run_id AND status <> 'ikke_laengere'
),
previous_scores AS (
    SELECT pupil_id, risk FROM scores_pupil_term WHERE run_id = $previous_run_id
),
chosen AS (
    SELECT c.*, CASE WHEN pv.pupil_id IS NULL THEN 'ny' ELSE 'fortsat' END AS status,
        c.rank_in_network AS list_rank
    FROM current c LEFT JOIN previous pv USING (pupil_id)
    UNION ALL
    SELECT s.*, 'ikke_laengere' AS status, NULL AS list_rank
    FROM scores_pupil_term s JOIN previous pv USING (pupil_id)
    WHERE s.run_id = $run_id AND s.rank_in_network > $capacity
),
reasons AS (
    SELECT pupil_id, [(hash(pupil_id, 1) % 6)::INTEGER + 1,
                      ((hash(pupil_id, 1) % 6) + 1 + hash(pupil_id, 2) % 5)::INTEGER % 6 + 1] AS picks
    FROM chosen
)
SELECT c.run_id, c.term, c.as_of_date, c.model_id, c.pupil_id, c.network_id, c.school_code, c.grade,
    c.status, c.list_rank, c.risk, c.tier, c.tier_step,
    ps.risk AS previous_risk, c.risk - ps.risk AS risk_change,
    CASE WHEN ps.risk IS NULL THEN 'ingen_tidligere'
         WHEN c.risk - ps.risk > 0.05 THEN 'stigende'
         WHEN ps.risk - c.risk > 0.05 THEN 'faldende' ELSE 'stabil' END AS trajectory,
    CASE WHEN c.grade <= 6 THEN 'tidlig_starter' ELSE 'sen_starter' END AS path_pattern,
    to_json(list_transform(r.picks, lambda k: {'text_da': $reasons[k], 'feature': 'sample'}))::VARCHAR AS reasons_da,
    to_json([{'text_da': 'Skolens samlede fravær er over kommunens median', 'feature': 'school_absence_pct_12m'}])
        ::VARCHAR AS context_da,
    '["fravaer"]' AS reason_families,
    to_json(list_slice(['sundhedsplejerske', 'ppr', 'socialraadgiver', 'uu'], 1,
        1 + (hash(c.pupil_id, 3) % 3)::INTEGER))::VARCHAR AS disciplines,
    true AS review_required, true AS in_network, 'capacity' AS selection, 'model' AS list_basis
FROM chosen c LEFT JOIN previous_scores ps USING (pupil_id) JOIN reasons r USING (pupil_id);

-- name: insert_explanations
INSERT INTO explanations_pupil_term BY NAME
WITH who AS (
    SELECT s.pupil_id, s.risk FROM scores_pupil_term s
    WHERE s.run_id = $run_id AND ($all_pupils OR s.pupil_id IN (
        SELECT pupil_id FROM flags_pupil_term WHERE run_id = $run_id))
),
raw AS (
    SELECT w.pupil_id, w.risk, l.feature, l.value,
        ((hash(w.pupil_id, l.feature) % 2000) / 1000.0 - 1) AS u
    FROM who w JOIN sample_features_long l ON l.pupil_id = w.pupil_id AND l.as_of_date = $as_of_date::DATE
),
spiky AS (
    SELECT *, u * (1 + 6 * (abs(u) > 0.85)::INT) AS r FROM raw
)
SELECT $run_id AS run_id, $term AS term, $as_of_date::DATE AS as_of_date, pupil_id, feature,
    value AS feature_value,
    0.12 * (r - avg(r) OVER (PARTITION BY pupil_id))
        + (ln(risk / (1 - risk)) - $base_value) * (r * r * r * r) / sum(r * r * r * r) OVER (PARTITION BY pupil_id)
        AS contribution,
    CASE WHEN feature LIKE 'absence%' OR feature LIKE 'late%' THEN 'fravaer'
         WHEN feature LIKE 'test%' OR feature LIKE 'marks%' THEN 'laering'
         ELSE 'trivsel_stoette' END AS family,
    true AS actionable, $base_value AS base_value, $model_id AS model_id
FROM spiky
ORDER BY pupil_id, feature;

-- name: create_features_long
-- The sample's tables are created from their DDL in ews/tables_warehouse.sql (dashboards/sample.py);
-- this is the sample's own scratch: one long row per pupil, as-of date and feature.
CREATE OR REPLACE TEMP TABLE sample_features_long (
    pupil_id VARCHAR, as_of_date DATE, term VARCHAR, feature VARCHAR, value DOUBLE);

-- name: clear_features_long
DELETE FROM sample_features_long;

-- name: insert_features
INSERT INTO features_pupil_term BY NAME
SELECT f.*, p.grade, p.school_code, p.network_id
FROM (PIVOT sample_features_long ON feature USING first(value) GROUP BY pupil_id, as_of_date, term) f
JOIN sample_pupils p USING (pupil_id);

-- name: insert_model
INSERT INTO models BY NAME
SELECT $model_id AS model_id, $term AS term, $as_of_date AS as_of_date,
    'upv_ikke_uddannelsesparat' AS outcome_definition, '2019/20' AS training_first_cohort,
    '2022/23' AS training_last_cohort, '["2019/20", "2020/21", "2021/22", "2022/23"]' AS training_cohorts,
    '["2023/24"]' AS evaluation_cohorts, $label_cutoff AS label_cutoff, $rows AS training_rows,
    $rows // 4 AS training_pupils, $rows // 5 AS evaluation_rows, 'sample' AS model_config_hash,
    'sample' AS code_version, 'sample' AS data_snapshot, 20160101 AS seed, $feature_names AS feature_names,
    $metrics_json AS metrics_json, $card_markdown AS card_markdown, NULL AS card_html,
    NULL AS candidate, NULL AS calibration, NULL AS selection_json;

-- name: insert_validation
INSERT INTO validation_results
SELECT $run_id, $term, source, expectation, column_name, success, unexpected_count, element_count, severity
FROM (VALUES
    ('pupils', 'expect_column_values_to_not_be_null', 'pupil_id', true, 0, $rows, 'file'),
    ('absence', 'expect_column_values_to_be_between', 'school_days', $term_index % 2 = 0, $term_index * 3, $rows, 'row'),
    ('marks', 'expect_column_values_to_be_in_set', 'mark', true, 0, $rows, 'row'),
    ('contacts', 'expect_column_values_to_be_in_set', 'discipline', $term_index <> 1, 2, $rows, 'row')
) v(source, expectation, column_name, success, unexpected_count, element_count, severity);

-- name: insert_quarantine
INSERT INTO quarantine_rows
SELECT $run_id, $term, 'absence', 'fravaer_2025-26.csv', 10 + i, 'school_days',
    'school_days is negative', '{"school_days": "-1"}'
FROM range($term_index * 3) t(i);

-- name: insert_identity
INSERT OR REPLACE INTO identity_pupils
SELECT pupil_id, $first_names[1 + (hash(pupil_id, 'f') % len($first_names))::INTEGER],
    $last_names[1 + (hash(pupil_id, 'l') % len($last_names))::INTEGER],
    school_code, grade::VARCHAR || '.' || chr(65 + (hash(pupil_id, 'c') % 3)::INTEGER), $school_year
FROM sample_pupils;
