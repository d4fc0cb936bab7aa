-- Register rows of the given pupils sources that passed every check (typed, not quarantined
-- by the contracts), for the identity store.
SELECT rows.source, rows.source_file, rows.source_line, rows.pupil_id, rows.school_code,
       rows.class_label, rows.enrolled_from
FROM raw_rows AS rows
WHERE rows.source IN (SELECT unnest($sources::VARCHAR[]))
  AND NOT EXISTS (SELECT 1 FROM raw_quarantine AS q
                  WHERE q.step = 'contracts' AND q.source = rows.source
                    AND q.source_file = rows.source_file AND q.source_line = rows.source_line);
