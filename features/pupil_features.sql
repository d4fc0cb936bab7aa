-- As-of features per pupil, one row per (pupil, as-of date), from the clean_* tables.
--
-- Every input row is used only when it is dated strictly before the row's as-of date:
-- absence by period_end, tests by test_date, marks by mark_date, contacts by contact_date,
-- support by start_date (an end date only tells that support had not ended before the
-- as-of date), enrolments by enrolled_from. features/leakage.py checks this by recomputing
-- on a warehouse cut at the as-of date.
--
-- Parameters:
--   $as_of_dates DATE[], $terms VARCHAR[], $term_starts DATE[], $school_years VARCHAR[]
--       parallel lists: each as-of date, its term label, the first day of that term and
--       its school year label ('2019/20').
--   $grades INTEGER[]   grades to include (5-8 for training, 5-9 for scoring).
--   $min_sitting INTEGER  fewest tests a sitting needs before scores are standardised.
--   $h1_md, $h2_md INTEGER  first day of the autumn and spring terms as month*100+day
--       (801 and 201): the term a date belongs to.
--
-- Windows: 6m = period_end in [as_of - 182, as_of), 12m = [as_of - 365, as_of),
-- all = everything before as_of. A pupil's windows are filtered sums over their rows before the
-- as-of date: the cost grows with the absence rows of the pupils in base times their as-of
-- dates, and the memory with pupils x as-of dates (never with the rows).
WITH as_of_list AS (
    SELECT
        unnest($as_of_dates::DATE[]) AS as_of_date,
        unnest($terms::VARCHAR[]) AS term,
        unnest($term_starts::DATE[]) AS term_start,
        unnest($school_years::VARCHAR[]) AS school_year
),
-- features/enrolled_counts.sql repeats this join to size the batches of as-of dates: change both
enrolment AS (
    SELECT
        a.as_of_date, a.term, a.term_start, p.pupil_id, p.school_code, p.grade,
        row_number() OVER (
            PARTITION BY a.as_of_date, p.pupil_id
            ORDER BY p.enrolled_from DESC, p.school_code, p.grade DESC
        ) AS pick
    FROM as_of_list AS a
    JOIN clean_pupils AS p
        ON p.school_year = a.school_year
        AND p.enrolled_from < a.as_of_date
        AND (p.enrolled_to IS NULL OR p.enrolled_to >= a.as_of_date)
    WHERE list_contains($grades::INTEGER[], p.grade)
),
base AS (
    SELECT
        as_of_date, term, term_start, pupil_id, school_code, grade,
        as_of_date - 182 AS cut_6m,
        as_of_date - 365 AS cut_12m
    FROM enrolment
    WHERE pick = 1
),
-- absence windows: filtered sums over the pupil's rows dated before the as-of date -------
-- One pass over the absence rows of the pupils in base, each row once per as-of date of its
-- pupil, into one group per (as-of date, pupil). Nothing the size of the absence history is
-- kept: a national term (a hundred million weekly rows for the pupils scored) streams through.
-- Day counts are summed as decimals (to a millionth of a day), here and below: exact sums, the
-- same whatever order the threads add them in, and 0.1 + 0.2 days are 0.3 at the 10 % line.
absence_rows AS NOT MATERIALIZED (
    SELECT
        b.as_of_date, b.pupil_id, b.term_start, b.cut_6m, b.cut_12m, a.period_end,
        a.school_days::DECIMAL(18, 6) AS school_days,
        a.illness_days::DECIMAL(18, 6) AS illness_days,
        a.authorised_days::DECIMAL(18, 6) AS authorised_days,
        a.unauthorised_days::DECIMAL(18, 6) AS unauthorised_days,
        a.illness_days::DECIMAL(18, 6) + a.authorised_days::DECIMAL(18, 6)
            + a.unauthorised_days::DECIMAL(18, 6) AS total_days,
        a.late_arrivals
    FROM base AS b
    JOIN clean_absence AS a ON a.pupil_id = b.pupil_id AND a.period_end < b.as_of_date
),
absence_windows AS (
    SELECT
        as_of_date, pupil_id,
        sum(school_days) AS school_all,
        sum(illness_days) AS illness_all, sum(authorised_days) AS authorised_all,
        sum(unauthorised_days) AS unauthorised_all, sum(total_days) AS total_all,
        coalesce(sum(school_days) FILTER (WHERE period_end >= cut_6m), 0) AS school_6m,
        coalesce(sum(illness_days) FILTER (WHERE period_end >= cut_6m), 0) AS illness_6m,
        coalesce(sum(authorised_days) FILTER (WHERE period_end >= cut_6m), 0) AS authorised_6m,
        coalesce(sum(unauthorised_days) FILTER (WHERE period_end >= cut_6m), 0) AS unauthorised_6m,
        coalesce(sum(total_days) FILTER (WHERE period_end >= cut_6m), 0) AS total_6m,
        coalesce(sum(late_arrivals) FILTER (WHERE period_end >= cut_6m), 0) AS late_6m,
        coalesce(sum(school_days) FILTER (WHERE period_end >= cut_12m), 0) AS school_12m,
        coalesce(sum(illness_days) FILTER (WHERE period_end >= cut_12m), 0) AS illness_12m,
        coalesce(sum(authorised_days) FILTER (WHERE period_end >= cut_12m), 0) AS authorised_12m,
        coalesce(sum(unauthorised_days) FILTER (WHERE period_end >= cut_12m), 0) AS unauthorised_12m,
        coalesce(sum(total_days) FILTER (WHERE period_end >= cut_12m), 0) AS total_12m,
        coalesce(sum(late_arrivals) FILTER (WHERE period_end >= cut_12m), 0) AS late_12m,
        coalesce(sum(school_days) FILTER (WHERE period_end >= term_start), 0) AS school_term,
        coalesce(sum(total_days) FILTER (WHERE period_end >= term_start), 0) AS total_term
    FROM absence_rows
    GROUP BY as_of_date, pupil_id
),
-- absence per complete term (the term a period belongs to is that of its end date) ----
absence_terms AS (
    SELECT
        pupil_id,
        CASE
            WHEN month(period_end) * 100 + day(period_end) >= $h1_md THEN year(period_end) * 2
            WHEN month(period_end) * 100 + day(period_end) >= $h2_md THEN (year(period_end) - 1) * 2 + 1
            ELSE (year(period_end) - 1) * 2
        END AS term_index,
        sum(school_days::DECIMAL(18, 6)) AS school_days,
        sum(illness_days::DECIMAL(18, 6) + authorised_days::DECIMAL(18, 6) + unauthorised_days::DECIMAL(18, 6))
            AS total_days
    FROM clean_absence
    WHERE pupil_id IN (SELECT DISTINCT pupil_id FROM base)
    GROUP BY ALL
),
base_term_index AS (
    SELECT
        as_of_date, pupil_id,
        CASE
            WHEN month(as_of_date) * 100 + day(as_of_date) >= $h1_md THEN year(as_of_date) * 2
            WHEN month(as_of_date) * 100 + day(as_of_date) >= $h2_md THEN (year(as_of_date) - 1) * 2 + 1
            ELSE (year(as_of_date) - 1) * 2
        END AS term_index
    FROM base
),
term_series AS (
    -- complete terms before the as-of date's term, plus the current term so far
    SELECT b.as_of_date, b.pupil_id, t.term_index, t.school_days, t.total_days
    FROM base_term_index AS b
    JOIN absence_terms AS t ON t.pupil_id = b.pupil_id AND t.term_index < b.term_index
    UNION ALL
    SELECT b.as_of_date, b.pupil_id, b.term_index, w.school_term, w.total_term
    FROM base_term_index AS b
    JOIN absence_windows AS w USING (as_of_date, pupil_id)
    WHERE w.school_term > 0
),
term_ranked AS (
    SELECT *,
        100.0 * total_days / school_days AS pct,
        row_number() OVER (PARTITION BY as_of_date, pupil_id ORDER BY term_index DESC) AS recent
    FROM term_series
    WHERE school_days >= 10
),
absence_term_features AS (
    SELECT
        as_of_date, pupil_id,
        -- ORDER BY fixes the order of summation: parallel float sums must not change the last digit
        regr_slope(pct, term_index ORDER BY term_index) FILTER (WHERE recent <= 4) AS absence_trend_pp,
        count(*) FILTER (WHERE pct > 10 AND school_days >= 20) AS absence_concerning_terms
    FROM term_ranked
    GROUP BY as_of_date, pupil_id
),
-- longest spell: runs of consecutive periods (a pupil's rows with the same end date are one
-- period) with at least half the school days absent. Only the last year's periods are
-- grouped; a run already going when the year began also counts its days before the year
-- (spell_carry), found among the older periods of just those pupils.
spell_periods AS (
    SELECT
        as_of_date, pupil_id, period_end, sum(total_days) AS total_days,
        coalesce(sum(school_days) > 0 AND sum(total_days) >= 0.5 * sum(school_days), false) AS absent
    FROM absence_rows
    WHERE period_end >= cut_12m
    GROUP BY as_of_date, pupil_id, period_end
),
spell_islands AS (
    SELECT as_of_date, pupil_id, period_end, total_days,
        -- periods before it in the year that were not absent: 0 for a run that starts the year
        rn_all - row_number() OVER (PARTITION BY as_of_date, pupil_id ORDER BY period_end) AS island
    FROM (
        SELECT *, row_number() OVER (PARTITION BY as_of_date, pupil_id ORDER BY period_end) AS rn_all
        FROM spell_periods
    )
    WHERE absent
),
spell_runs AS (
    SELECT as_of_date, pupil_id, island, sum(total_days) AS run_days
    FROM spell_islands
    GROUP BY ALL
),
spell_before AS (
    -- the periods before the year of the pupils whose year begins inside a run
    SELECT as_of_date, pupil_id, period_end, sum(total_days) AS total_days,
        coalesce(sum(school_days) > 0 AND sum(total_days) >= 0.5 * sum(school_days), false) AS absent
    FROM (
        SELECT r.as_of_date, r.pupil_id, a.period_end, a.school_days::DECIMAL(18, 6) AS school_days,
            a.illness_days::DECIMAL(18, 6) + a.authorised_days::DECIMAL(18, 6)
                + a.unauthorised_days::DECIMAL(18, 6) AS total_days
        FROM spell_runs AS r
        JOIN base AS b USING (as_of_date, pupil_id)
        JOIN clean_absence AS a ON a.pupil_id = r.pupil_id AND a.period_end < b.cut_12m
        WHERE r.island = 0
    )
    GROUP BY ALL
),
spell_carry AS (
    -- the days of the run's periods before the year: those after the last period not absent
    SELECT as_of_date, pupil_id,
        sum(total_days) FILTER (
            WHERE period_end > coalesce(last_present, DATE '0001-01-01')
        ) AS carry
    FROM (
        SELECT *,
            max(CASE WHEN NOT absent THEN period_end END) OVER (PARTITION BY as_of_date, pupil_id) AS last_present
        FROM spell_before
    )
    GROUP BY as_of_date, pupil_id
),
absence_spells AS (
    SELECT r.as_of_date, r.pupil_id,
        max(CASE WHEN r.island = 0 THEN coalesce(c.carry, 0) + r.run_days ELSE r.run_days END) AS longest_spell
    FROM spell_runs AS r
    LEFT JOIN spell_carry AS c USING (as_of_date, pupil_id)
    GROUP BY r.as_of_date, r.pupil_id
),
-- the school's mean absence over the last year -----------------------------------------
school_by_end AS (
    SELECT school_code, period_end, sum(school_days::DECIMAL(18, 6)) AS school_days,
        sum(illness_days::DECIMAL(18, 6) + authorised_days::DECIMAL(18, 6) + unauthorised_days::DECIMAL(18, 6))
            AS total_days
    FROM clean_absence
    -- earlier rows would add the same amount to both ends of every window
    WHERE period_end >= (SELECT min(cut_12m) FROM base)
    GROUP BY school_code, period_end
),
school_cum AS (
    SELECT school_code, period_end,
        sum(school_days) OVER w AS c_school, sum(total_days) OVER w AS c_total
    FROM school_by_end
    WINDOW w AS (PARTITION BY school_code ORDER BY period_end ROWS UNBOUNDED PRECEDING)
),
school_asof AS (
    SELECT DISTINCT as_of_date, school_code, cut_12m FROM base
),
school_absence AS (
    SELECT
        s.as_of_date, s.school_code,
        100.0 * (n.c_total - coalesce(y.c_total, 0))
            / nullif(n.c_school - coalesce(y.c_school, 0), 0) AS school_absence_pct_12m
    FROM school_asof AS s
    ASOF LEFT JOIN school_cum AS n ON s.school_code = n.school_code AND s.as_of_date > n.period_end
    ASOF LEFT JOIN school_cum AS y ON s.school_code = y.school_code AND s.cut_12m > y.period_end
),
-- national tests as normal scores within their sitting, as far as the sitting is known --
-- A sitting is (subject, scale, grade, school year). A score becomes the normal quantile of
-- its mid-rank among the sitting's tests dated before the as-of date: the same for every
-- scale (NT percentiles, the transition tests, the new tests), so scale breaks do not
-- matter. The quantile uses Abramowitz & Stegun 26.2.23 (error below 0.00045).
test_rows AS (
    SELECT pupil_id, subject, scale, grade, test_date, score,
        CASE WHEN month(test_date) >= 8 THEN year(test_date) ELSE year(test_date) - 1 END AS sitting_year
    FROM clean_tests
),
sitting_days AS (
    SELECT subject, scale, grade, sitting_year, test_date, count(*) AS n
    FROM test_rows
    GROUP BY ALL
),
sitting_asof AS (
    -- per as-of date and sitting: the last test day known, and how many tests were known
    SELECT a.as_of_date, d.subject, d.scale, d.grade, d.sitting_year,
        max(d.test_date) AS known_until, sum(d.n) AS n
    FROM as_of_list AS a
    JOIN sitting_days AS d ON d.test_date < a.as_of_date
    GROUP BY ALL
),
sitting_versions AS (
    SELECT DISTINCT subject, scale, grade, sitting_year, known_until FROM sitting_asof
),
test_ranked AS (
    SELECT v.known_until, t.pupil_id, t.subject, t.scale, t.grade, t.sitting_year, t.test_date,
        (rank() OVER (PARTITION BY v.known_until, t.subject, t.scale, t.grade, t.sitting_year ORDER BY t.score)
            + (count(*) OVER (PARTITION BY v.known_until, t.subject, t.scale, t.grade, t.sitting_year, t.score) - 1) / 2.0
            - 0.5)
            / count(*) OVER (PARTITION BY v.known_until, t.subject, t.scale, t.grade, t.sitting_year) AS q
    FROM sitting_versions AS v
    JOIN test_rows AS t
        ON t.subject = v.subject AND t.scale = v.scale AND t.grade = v.grade
        AND t.sitting_year = v.sitting_year AND t.test_date <= v.known_until
),
test_scored AS (
    SELECT *,
        sign(q - 0.5) * (
            sqrt(-2 * ln(least(q, 1 - q)))
            - (2.515517 + 0.802853 * sqrt(-2 * ln(least(q, 1 - q)))
                + 0.010328 * (-2 * ln(least(q, 1 - q))))
            / (1 + 1.432788 * sqrt(-2 * ln(least(q, 1 - q)))
                + 0.189269 * (-2 * ln(least(q, 1 - q)))
                + 0.001308 * sqrt(-2 * ln(least(q, 1 - q))) ^ 3)
        ) AS z
    FROM test_ranked
),
pupil_tests AS (
    SELECT b.as_of_date, b.pupil_id, t.subject, r.z,
        row_number() OVER (
            PARTITION BY b.as_of_date, b.pupil_id, t.subject ORDER BY t.test_date DESC, r.z
        ) AS recent
    FROM base AS b
    JOIN test_rows AS t ON t.pupil_id = b.pupil_id AND t.test_date < b.as_of_date
    JOIN sitting_asof AS s
        ON s.as_of_date = b.as_of_date AND s.subject = t.subject AND s.scale = t.scale
        AND s.grade = t.grade AND s.sitting_year = t.sitting_year
    JOIN test_scored AS r
        ON r.known_until = s.known_until AND r.pupil_id = t.pupil_id AND r.subject = t.subject
        AND r.scale = t.scale AND r.grade = t.grade AND r.sitting_year = t.sitting_year
        AND r.test_date = t.test_date
    WHERE s.n >= $min_sitting
),
test_features AS (
    SELECT as_of_date, pupil_id,
        max(z) FILTER (WHERE subject = 'dansk_laesning' AND recent = 1) AS test_reading_latest_z,
        max(z) FILTER (WHERE subject = 'dansk_laesning' AND recent = 1)
            - max(z) FILTER (WHERE subject = 'dansk_laesning' AND recent = 2) AS test_reading_change_z,
        max(z) FILTER (WHERE subject = 'matematik' AND recent = 1) AS test_math_latest_z,
        max(z) FILTER (WHERE subject = 'matematik' AND recent = 1)
            - max(z) FILTER (WHERE subject = 'matematik' AND recent = 2) AS test_math_change_z,
        avg(z ORDER BY subject, recent) AS test_mean_z,
        1 AS test_data_available
    FROM pupil_tests
    GROUP BY as_of_date, pupil_id
),
-- standing marks (never the leaving exam, which is an outcome) --------------------------
-- The history per subject: first and latest mark on record, how many; and the mean of all
-- standing marks over the last year. Marks of any grade count (the config says which
-- grades a municipality exports).
pupil_marks AS (
    SELECT b.as_of_date, b.pupil_id, b.cut_12m, m.subject, m.mark, m.mark_date,
        row_number() OVER (
            PARTITION BY b.as_of_date, b.pupil_id, m.subject ORDER BY m.mark_date DESC, m.mark
        ) AS recent,
        row_number() OVER (
            PARTITION BY b.as_of_date, b.pupil_id, m.subject ORDER BY m.mark_date, m.mark
        ) AS earliest
    FROM base AS b
    JOIN clean_marks AS m
        ON m.pupil_id = b.pupil_id AND m.mark_date < b.as_of_date AND m.mark_kind = 'standpunkt'
),
subject_marks AS (
    SELECT as_of_date, pupil_id, subject,
        max(mark) FILTER (WHERE recent = 1) AS latest_mark,
        max(mark) FILTER (WHERE earliest = 1) AS first_mark,
        count(*) AS marks_given
    FROM pupil_marks
    GROUP BY as_of_date, pupil_id, subject
),
mark_year AS (
    SELECT as_of_date, pupil_id, avg(mark) AS marks_mean_12m
    FROM pupil_marks
    WHERE mark_date >= cut_12m
    GROUP BY as_of_date, pupil_id
),
mark_features AS (
    SELECT s.as_of_date, s.pupil_id,
        avg(s.latest_mark) AS marks_mean_latest,
        count(*) FILTER (WHERE s.latest_mark < 2) AS marks_below_02_count,
        avg(s.first_mark) AS marks_mean_first,
        avg(s.latest_mark - s.first_mark) FILTER (WHERE s.marks_given >= 2) AS marks_change,
        any_value(y.marks_mean_12m) AS marks_mean_12m,
        1 AS marks_data_available
    FROM subject_marks AS s
    LEFT JOIN mark_year AS y USING (as_of_date, pupil_id)
    GROUP BY s.as_of_date, s.pupil_id
),
-- service contacts and notifications --------------------------------------------------
pupil_contacts AS (
    SELECT b.as_of_date, b.pupil_id, b.cut_12m, c.contact_date, c.discipline, c.contact_type
    FROM base AS b
    JOIN clean_contacts AS c ON c.pupil_id = b.pupil_id AND c.contact_date < b.as_of_date
),
contact_features AS (
    SELECT as_of_date, pupil_id,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ppr' AND contact_date >= cut_12m) AS contacts_ppr_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ppr') AS contacts_ppr_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ppr') AS contacts_ppr_days_since,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'socialraadgiver' AND contact_date >= cut_12m) AS contacts_socialraadgiver_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'socialraadgiver') AS contacts_socialraadgiver_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'socialraadgiver') AS contacts_socialraadgiver_days_since,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'sundhedsplejerske' AND contact_date >= cut_12m) AS contacts_sundhedsplejerske_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'sundhedsplejerske') AS contacts_sundhedsplejerske_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'sundhedsplejerske') AS contacts_sundhedsplejerske_days_since,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'talehoerelaerer' AND contact_date >= cut_12m) AS contacts_talehoerelaerer_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'talehoerelaerer') AS contacts_talehoerelaerer_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'talehoerelaerer') AS contacts_talehoerelaerer_days_since,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ergoterapeut' AND contact_date >= cut_12m) AS contacts_ergoterapeut_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ergoterapeut') AS contacts_ergoterapeut_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'ergoterapeut') AS contacts_ergoterapeut_days_since,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'uu' AND contact_date >= cut_12m) AS contacts_uu_12m,
        count(*) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'uu') AS contacts_uu_ever,
        as_of_date - max(contact_date) FILTER (WHERE contact_type = 'kontakt' AND discipline = 'uu') AS contacts_uu_days_since,
        count(*) FILTER (WHERE contact_type = 'underretning' AND contact_date >= cut_12m) AS notifications_12m,
        count(*) FILTER (WHERE contact_type = 'underretning') AS notifications_ever
    FROM pupil_contacts
    GROUP BY as_of_date, pupil_id
),
-- special-needs support -----------------------------------------------------------------
support_features AS (
    SELECT b.as_of_date, b.pupil_id,
        coalesce(max(
            CASE s.support_type
                WHEN 'stoettetimer' THEN 1 WHEN 'specialklasse' THEN 2 WHEN 'specialskole' THEN 3
            END
        ) FILTER (WHERE s.end_date IS NULL OR s.end_date >= b.as_of_date), 0) AS support_active_level,
        max(
            CASE s.support_type
                WHEN 'stoettetimer' THEN 1 WHEN 'specialklasse' THEN 2 WHEN 'specialskole' THEN 3
            END
        ) AS support_max_level,
        1 AS support_ever
    FROM base AS b
    JOIN clean_support AS s ON s.pupil_id = b.pupil_id AND s.start_date < b.as_of_date
    GROUP BY b.as_of_date, b.pupil_id
),
-- school moves: changes of school between consecutive enrolments -----------------------
pupil_enrolments AS (
    SELECT DISTINCT b.as_of_date, b.pupil_id, b.cut_12m, p.school_code, p.enrolled_from
    FROM base AS b
    JOIN clean_pupils AS p ON p.pupil_id = b.pupil_id AND p.enrolled_from < b.as_of_date
),
enrolment_changes AS (
    SELECT *,
        lag(school_code) OVER (
            PARTITION BY as_of_date, pupil_id ORDER BY enrolled_from, school_code
        ) AS previous_school
    FROM pupil_enrolments
),
records_start AS (
    -- the first enrolment day on record before each as-of date (the start of the records)
    SELECT a.as_of_date, min(p.enrolled_from) AS first_day
    FROM as_of_list AS a
    JOIN clean_pupils AS p ON p.enrolled_from < a.as_of_date
    GROUP BY a.as_of_date
),
first_enrolment AS (
    SELECT as_of_date, pupil_id,
        arg_min(p.grade, p.enrolled_from) AS first_grade, min(p.enrolled_from) AS first_from
    FROM base AS b
    JOIN clean_pupils AS p USING (pupil_id)
    WHERE p.enrolled_from < b.as_of_date
    GROUP BY as_of_date, pupil_id
),
arrival_features AS (
    -- first seen after the records began, other than at school start (grade 0 in August or
    -- September): the pupil came from outside the municipality
    SELECT f.as_of_date, f.pupil_id,
        (f.first_from > r.first_day
            AND NOT (f.first_grade = 0 AND month(f.first_from) IN (8, 9)))::INTEGER AS arrived_from_outside,
        greatest((f.as_of_date - f.first_from) / 365.25, 0.5) AS years_on_record
    FROM first_enrolment AS f
    JOIN records_start AS r USING (as_of_date)
),
mobility_features AS (
    SELECT as_of_date, pupil_id,
        count(*) FILTER (WHERE previous_school IS NOT NULL AND previous_school <> school_code) AS school_moves_ever,
        count(*) FILTER (
            WHERE previous_school IS NOT NULL AND previous_school <> school_code AND enrolled_from >= cut_12m
        ) AS school_moves_12m,
        as_of_date - coalesce(
            max(enrolled_from) FILTER (WHERE previous_school IS NOT NULL AND previous_school <> school_code),
            min(enrolled_from)
        ) AS days_at_current_school
    FROM enrolment_changes
    GROUP BY as_of_date, pupil_id
)
SELECT
    b.pupil_id, b.as_of_date, b.term, b.grade, b.school_code,
    100.0 * w.total_6m / nullif(w.school_6m, 0) AS absence_total_pct_6m,
    100.0 * w.illness_6m / nullif(w.school_6m, 0) AS absence_illness_pct_6m,
    100.0 * w.authorised_6m / nullif(w.school_6m, 0) AS absence_authorised_pct_6m,
    100.0 * w.unauthorised_6m / nullif(w.school_6m, 0) AS absence_unauthorised_pct_6m,
    100.0 * w.total_12m / nullif(w.school_12m, 0) AS absence_total_pct_12m,
    100.0 * w.illness_12m / nullif(w.school_12m, 0) AS absence_illness_pct_12m,
    100.0 * w.authorised_12m / nullif(w.school_12m, 0) AS absence_authorised_pct_12m,
    100.0 * w.unauthorised_12m / nullif(w.school_12m, 0) AS absence_unauthorised_pct_12m,
    100.0 * w.total_all / nullif(w.school_all, 0) AS absence_total_pct_all,
    100.0 * w.illness_all / nullif(w.school_all, 0) AS absence_illness_pct_all,
    100.0 * w.authorised_all / nullif(w.school_all, 0) AS absence_authorised_pct_all,
    100.0 * w.unauthorised_all / nullif(w.school_all, 0) AS absence_unauthorised_pct_all,
    tf.absence_trend_pp,
    CASE WHEN w.school_12m > 0 THEN coalesce(sp.longest_spell, 0) END AS absence_longest_spell_days_12m,
    CASE WHEN w.school_12m > 0 THEN (100.0 * w.total_12m / w.school_12m > 10)::INTEGER END
        AS absence_concerning_12m,
    CASE WHEN w.school_all > 0 THEN coalesce(tf.absence_concerning_terms, 0) END AS absence_concerning_terms,
    100.0 * w.late_6m / nullif(w.school_6m, 0) AS late_arrivals_per_100_days_6m,
    100.0 * w.late_12m / nullif(w.school_12m, 0) AS late_arrivals_per_100_days_12m,
    t.test_reading_latest_z, t.test_reading_change_z, t.test_math_latest_z, t.test_math_change_z,
    t.test_mean_z,
    m.marks_mean_latest, m.marks_below_02_count, m.marks_mean_first, m.marks_change,
    m.marks_mean_12m,
    coalesce(c.contacts_ppr_12m, 0) AS contacts_ppr_12m,
    coalesce(c.contacts_ppr_ever, 0) AS contacts_ppr_ever,
    c.contacts_ppr_days_since,
    coalesce(c.contacts_socialraadgiver_12m, 0) AS contacts_socialraadgiver_12m,
    coalesce(c.contacts_socialraadgiver_ever, 0) AS contacts_socialraadgiver_ever,
    c.contacts_socialraadgiver_days_since,
    coalesce(c.contacts_sundhedsplejerske_12m, 0) AS contacts_sundhedsplejerske_12m,
    coalesce(c.contacts_sundhedsplejerske_ever, 0) AS contacts_sundhedsplejerske_ever,
    c.contacts_sundhedsplejerske_days_since,
    coalesce(c.contacts_talehoerelaerer_12m, 0) AS contacts_talehoerelaerer_12m,
    coalesce(c.contacts_talehoerelaerer_ever, 0) AS contacts_talehoerelaerer_ever,
    c.contacts_talehoerelaerer_days_since,
    coalesce(c.contacts_ergoterapeut_12m, 0) AS contacts_ergoterapeut_12m,
    coalesce(c.contacts_ergoterapeut_ever, 0) AS contacts_ergoterapeut_ever,
    c.contacts_ergoterapeut_days_since,
    coalesce(c.contacts_uu_12m, 0) AS contacts_uu_12m,
    coalesce(c.contacts_uu_ever, 0) AS contacts_uu_ever,
    c.contacts_uu_days_since,
    coalesce(c.notifications_12m, 0) AS notifications_12m,
    coalesce(c.notifications_ever, 0) AS notifications_ever,
    coalesce(c.contacts_ppr_ever, 0) / ar.years_on_record AS contacts_ppr_per_year,
    coalesce(c.contacts_socialraadgiver_ever, 0) / ar.years_on_record AS contacts_socialraadgiver_per_year,
    coalesce(c.contacts_sundhedsplejerske_ever, 0) / ar.years_on_record AS contacts_sundhedsplejerske_per_year,
    coalesce(c.contacts_talehoerelaerer_ever, 0) / ar.years_on_record AS contacts_talehoerelaerer_per_year,
    coalesce(c.contacts_ergoterapeut_ever, 0) / ar.years_on_record AS contacts_ergoterapeut_per_year,
    coalesce(c.contacts_uu_ever, 0) / ar.years_on_record AS contacts_uu_per_year,
    coalesce(c.notifications_ever, 0) / ar.years_on_record AS notifications_per_year,
    coalesce(s.support_active_level, 0) AS support_active_level,
    coalesce(s.support_ever, 0) AS support_ever,
    coalesce(s.support_max_level, 0) AS support_max_level,
    coalesce(mo.school_moves_ever, 0) AS school_moves_ever,
    coalesce(mo.school_moves_12m, 0) AS school_moves_12m,
    mo.days_at_current_school,
    coalesce(ar.arrived_from_outside, 0) AS arrived_from_outside,
    ar.years_on_record,
    sa.school_absence_pct_12m,
    (coalesce(w.school_12m, 0) > 0)::INTEGER AS absence_data_available,
    coalesce(t.test_data_available, 0) AS test_data_available,
    coalesce(m.marks_data_available, 0) AS marks_data_available
FROM base AS b
LEFT JOIN absence_windows AS w USING (as_of_date, pupil_id)
LEFT JOIN absence_term_features AS tf USING (as_of_date, pupil_id)
LEFT JOIN absence_spells AS sp USING (as_of_date, pupil_id)
LEFT JOIN school_absence AS sa USING (as_of_date, school_code)
LEFT JOIN test_features AS t USING (as_of_date, pupil_id)
LEFT JOIN mark_features AS m USING (as_of_date, pupil_id)
LEFT JOIN contact_features AS c USING (as_of_date, pupil_id)
LEFT JOIN support_features AS s USING (as_of_date, pupil_id)
LEFT JOIN mobility_features AS mo USING (as_of_date, pupil_id)
LEFT JOIN arrival_features AS ar USING (as_of_date, pupil_id)
ORDER BY b.as_of_date, b.pupil_id
