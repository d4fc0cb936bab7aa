-- Reads of the live warehouse (opened read-only per request) and of the run log.
-- Pupil-level queries are only run after the access check; steward queries return aggregates.

-- name: existing_tables
SELECT table_name FROM duckdb_tables();

-- name: terms_with_flags
SELECT term, max(run_id) AS run_id, count(*) FILTER (WHERE status <> 'ikke_laengere') AS flagged
FROM flags_pupil_term GROUP BY term ORDER BY term DESC;

-- name: network_flags
SELECT f.*, s.rank_in_network
FROM flags_pupil_term f
LEFT JOIN scores_pupil_term s ON s.run_id = f.run_id AND s.pupil_id = f.pupil_id
WHERE f.run_id = $run_id AND f.network_id = $network_id
ORDER BY f.status = 'ikke_laengere', f.list_rank NULLS LAST, f.risk DESC NULLS LAST;

-- name: school_flags
SELECT f.*, s.rank_in_network
FROM flags_pupil_term f
LEFT JOIN scores_pupil_term s ON s.run_id = f.run_id AND s.pupil_id = f.pupil_id
WHERE f.run_id = $run_id AND list_contains($schools, f.school_code)
ORDER BY f.status = 'ikke_laengere', f.school_code, f.risk DESC NULLS LAST;

-- name: pupil_flag
-- Every row of the pupil in a run: a pupil who moved network has one row per network (on the new
-- network's list, and "ikke_laengere" on the old one). Rows on a list come first.
SELECT f.*, s.rank_in_network
FROM flags_pupil_term f
LEFT JOIN scores_pupil_term s ON s.run_id = f.run_id AND s.pupil_id = f.pupil_id
WHERE f.run_id = $run_id AND f.pupil_id = $pupil_id
ORDER BY f.status = 'ikke_laengere', f.network_id;

-- name: pupil_trajectory
-- One row per term, whatever school or network the pupil was in: the term's list run (the newest,
-- as in terms_with_flags), and the pupil counts as on the list when any of its rows is.
WITH term_runs AS (
    SELECT term, max(run_id) AS run_id FROM scores_pupil_term
    WHERE pupil_id = $pupil_id AND term <= $term GROUP BY term
),
listed AS (
    SELECT f.run_id,
        CASE WHEN bool_or(f.status = 'fortsat') THEN 'fortsat'
             WHEN bool_or(f.status = 'ny') THEN 'ny'
             ELSE 'ikke_laengere' END AS status
    FROM flags_pupil_term f JOIN term_runs USING (run_id)
    WHERE f.pupil_id = $pupil_id GROUP BY f.run_id
)
SELECT t.term, any_value(s.as_of_date) AS as_of_date, any_value(s.risk) AS risk, any_value(s.tier) AS tier,
    t.run_id, any_value(l.status) AS status
FROM term_runs t
JOIN scores_pupil_term s ON s.run_id = t.run_id AND s.pupil_id = $pupil_id
LEFT JOIN listed l ON l.run_id = t.run_id
GROUP BY t.term, t.run_id
ORDER BY t.term;

-- name: pupil_explanation
SELECT feature, feature_value, contribution, family, base_value, model_id
FROM explanations_pupil_term
WHERE run_id = $run_id AND pupil_id = $pupil_id
ORDER BY abs(contribution) DESC;

-- name: feature_comparison
WITH grade_pupils AS (
    SELECT pupil_id, school_code = $school_code AS own_school
    FROM scores_pupil_term WHERE run_id = $run_id AND grade = $grade
),
population AS MATERIALIZED (
    SELECT g.own_school, COLUMNS(lambda c: list_contains($features, c))
    FROM features_pupil_term f JOIN grade_pupils g USING (pupil_id)
    WHERE f.as_of_date = $as_of_date
)
SELECT 'school_median' AS level, count(*) AS pupils,
    median(COLUMNS(lambda c: list_contains($features, c))::DOUBLE) FROM population WHERE own_school
UNION ALL BY NAME
SELECT 'school_mean' AS level, count(*) AS pupils,
    avg(COLUMNS(lambda c: list_contains($features, c))::DOUBLE) FROM population WHERE own_school
UNION ALL BY NAME
SELECT 'municipality_median' AS level, count(*) AS pupils,
    median(COLUMNS(lambda c: list_contains($features, c))::DOUBLE) FROM population
UNION ALL BY NAME
SELECT 'municipality_mean' AS level, count(*) AS pupils,
    avg(COLUMNS(lambda c: list_contains($features, c))::DOUBLE) FROM population;

-- name: table_columns
SELECT column_name, data_type FROM information_schema.columns
WHERE table_name = $table ORDER BY ordinal_position;

-- name: model_row
SELECT * FROM models WHERE model_id = $model_id;

-- name: all_models
SELECT * FROM models;

-- name: identities
SELECT pupil_id, first_name, last_name, class_label, school_code
FROM identity_pupils WHERE list_contains($pupil_ids, pupil_id);

-- name: validation_by_term
SELECT term, source,
    count(*) AS expectations,
    count(*) FILTER (WHERE NOT success) AS failed,
    count(*) FILTER (WHERE NOT success AND severity = 'file') AS failed_file_level,
    coalesce(sum(unexpected_count) FILTER (WHERE NOT success), 0) AS unexpected
FROM validation_results GROUP BY term, source ORDER BY term DESC, source;

-- name: validation_failures
SELECT source, expectation, column_name, unexpected_count, element_count, severity
FROM validation_results WHERE term = $term AND NOT success
ORDER BY severity = 'file' DESC, unexpected_count DESC NULLS LAST, source;

-- name: quarantine_by_term
SELECT term, source, count(*) AS rows_quarantined, count(DISTINCT source_file) AS files
FROM quarantine_rows GROUP BY term, source ORDER BY term DESC, source;

-- name: quarantine_reasons
SELECT source, column_name, reason, count(*) AS rows_quarantined
FROM quarantine_rows WHERE term = $term
GROUP BY source, column_name, reason ORDER BY rows_quarantined DESC LIMIT 50;

-- name: score_summary
SELECT term, count(*) AS pupils, avg(risk) AS mean_risk,
    quantile_cont(risk, 0.5) AS p50, quantile_cont(risk, 0.75) AS p75,
    quantile_cont(risk, 0.9) AS p90, quantile_cont(risk, 0.99) AS p99,
    count(DISTINCT model_id) AS models, max(model_id) AS model_id, max(run_id) AS run_id,
    max(as_of_date) AS as_of_date
FROM scores_pupil_term GROUP BY term ORDER BY term;

-- name: score_histogram
SELECT least(floor(risk * $bins), $bins - 1)::INTEGER AS bin, count(*) AS pupils
FROM scores_pupil_term WHERE term = $term GROUP BY bin ORDER BY bin;

-- name: tiers_by_term
SELECT term, tier, count(*) AS pupils FROM scores_pupil_term GROUP BY term, tier ORDER BY term, tier;

-- name: flags_by_term
SELECT term, network_id, status, count(*) AS pupils
FROM flags_pupil_term GROUP BY term, network_id, status ORDER BY term DESC, network_id, status;

-- name: feature_as_of_dates
SELECT DISTINCT as_of_date FROM features_pupil_term ORDER BY as_of_date;

-- name: feature_sample
-- The sample is drawn after the filter (a sample clause in the same SELECT would come first).
SELECT * FROM (
    SELECT COLUMNS(lambda c: list_contains($features, c))::DOUBLE
    FROM features_pupil_term
    WHERE list_contains($as_of_dates, as_of_date)
) USING SAMPLE reservoir(200000 ROWS) REPEATABLE (20160101);

-- name: runs
SELECT run_id, attempt, term, as_of_date, status, started_at, ended_at,
    date_diff('millisecond', started_at, ended_at) / 1000.0 AS seconds,
    config_hash, code_version, data_snapshot, message, manifest_path
FROM runs ORDER BY started_at DESC LIMIT $limit;

-- name: run_source_totals
SELECT run_id, attempt, count(*) AS files, sum(rows_read) AS rows_read,
    sum(rows_loaded) AS rows_loaded, sum(rows_quarantined) AS rows_quarantined
FROM run_sources GROUP BY run_id, attempt;

-- name: run_sources_of
SELECT source, file, rows_read, rows_loaded, rows_quarantined, file_sha256
FROM run_sources WHERE run_id = $run_id AND attempt = $attempt ORDER BY source, file;

-- name: run_by_id
SELECT run_id, attempt, term, as_of_date, status, started_at, ended_at,
    date_diff('millisecond', started_at, ended_at) / 1000.0 AS seconds,
    config_hash, code_version, data_snapshot, message, manifest_path
FROM runs WHERE run_id = $run_id ORDER BY attempt DESC;

-- name: outcome_evaluations
-- Earlier models against arrived outcomes, every evaluating term (aggregates only).
SELECT * FROM scores_outcome_evaluation
ORDER BY model_id, scored_term, own_definition DESC, outcome_definition, grade NULLS FIRST, term;

-- name: flag_outcome_counts
-- Outcomes of flagged and unflagged, confirmed and dismissed pupils (descriptive), latest evaluating term.
SELECT * FROM flags_outcomes
WHERE term = (SELECT max(term) FROM flags_outcomes)
ORDER BY scored_term, outcome_definition, pupil_group;
