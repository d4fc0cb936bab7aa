-- Views of the clean tables as they could have been known on the as-of date: rows dated on
-- or after it are left out and end dates on or after it become open (NULL). Views, not copies:
-- a copy of every table held the national warehouse a second time (more than 18 GB of spill).
-- Runs with the cut database as the current database. The home placeholder names the
-- warehouse's own database (an identifier) and $as_of becomes a DATE literal written from a
-- date object by features/leakage.py: views take no parameters, and neither is ever a value
-- from the data.
CREATE VIEW clean_pupils AS
    SELECT * REPLACE (CASE WHEN enrolled_to >= $as_of THEN NULL ELSE enrolled_to END AS enrolled_to)
    FROM $home.main.clean_pupils
    WHERE enrolled_from < $as_of
        AND make_date(CAST(left(school_year, 4) AS INTEGER), 8, 1) <= $as_of;
CREATE VIEW clean_absence AS
    SELECT * FROM $home.main.clean_absence WHERE period_end < $as_of;
CREATE VIEW clean_tests AS
    SELECT * FROM $home.main.clean_tests WHERE test_date < $as_of;
CREATE VIEW clean_marks AS
    SELECT * FROM $home.main.clean_marks WHERE mark_date < $as_of;
CREATE VIEW clean_contacts AS
    SELECT * FROM $home.main.clean_contacts WHERE contact_date < $as_of;
CREATE VIEW clean_support AS
    SELECT * REPLACE (CASE WHEN end_date >= $as_of THEN NULL ELSE end_date END AS end_date)
    FROM $home.main.clean_support
    WHERE start_date < $as_of;
CREATE VIEW clean_outcomes AS
    SELECT * FROM $home.main.clean_outcomes WHERE assessed_date < $as_of;
