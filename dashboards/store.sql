-- The review app's own state (state_dir/app.sqlite). The pipeline never writes this file.
-- Reviews and the audit log are append-only: triggers reject every UPDATE and DELETE.

-- name: schema
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('network_member', 'consultant', 'steward', 'admin')),
    password_hash TEXT,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL,
    password_changed_at TEXT
);
CREATE TABLE IF NOT EXISTS assignments (
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    kind TEXT NOT NULL CHECK (kind IN ('network', 'school')),
    target TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, target)
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    csrf_token TEXT NOT NULL,
    auth_mode TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    review_id INTEGER PRIMARY KEY,
    pupil_id TEXT NOT NULL,
    term TEXT NOT NULL,
    run_id TEXT NOT NULL,
    network_id TEXT,
    school_code TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('bekraeftet', 'afvist', 'familie_kontaktet',
        'henvist_netvaerksmoede', 'indsatstrappe')),
    dismiss_reason TEXT,
    step TEXT,
    reviewer TEXT NOT NULL,
    reviewer_role TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    prev_hash TEXT,
    row_hash TEXT,
    chain_version INTEGER NOT NULL DEFAULT 0,
    CHECK ((decision = 'afvist') = (dismiss_reason IS NOT NULL)),
    CHECK ((decision = 'indsatstrappe') = (step IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS reviews_by_pupil ON reviews (pupil_id, review_id);
CREATE TRIGGER IF NOT EXISTS reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only: record a new review instead'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only: they cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    username TEXT,
    role TEXT,
    action TEXT NOT NULL,
    object_type TEXT,
    object_id TEXT,
    run_id TEXT,
    purpose TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    http_status INTEGER,
    path TEXT,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    client TEXT,
    chain_version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit_log (username, action, at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS chain_verifications (
    verification_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
    summary TEXT NOT NULL,
    audit_rows INTEGER NOT NULL,
    review_rows INTEGER NOT NULL,
    checkpoints INTEGER NOT NULL,
    by TEXT NOT NULL
);

-- name: migrate_chain
-- Files written before the keyed chain (issue 12) get its columns, and their rows keep
-- chain_version 0 and are verified from the seal (dashboards/audit_chain.py).
ALTER TABLE reviews ADD COLUMN prev_hash TEXT;
ALTER TABLE reviews ADD COLUMN row_hash TEXT;
ALTER TABLE reviews ADD COLUMN chain_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN client TEXT;
ALTER TABLE audit_log ADD COLUMN chain_version INTEGER NOT NULL DEFAULT 0;

-- name: migrate_followup
-- The follow-up of a confirmed flag (issue 14): who is responsible and when the next step is due.
ALTER TABLE reviews ADD COLUMN responsible TEXT;
ALTER TABLE reviews ADD COLUMN next_step_date TEXT;

-- name: indexes
CREATE INDEX IF NOT EXISTS audit_by_client ON audit_log (client, action, at);

-- name: insert_user
INSERT INTO users (username, display_name, role, password_hash, active, created_at,
    password_changed_at)
VALUES ($username, $display_name, $role, $password_hash, 1, $now, $password_changed_at)
RETURNING user_id;

-- name: user_by_name
SELECT user_id, username, display_name, role, password_hash, active FROM users
WHERE username = $username;

-- name: user_by_id
SELECT user_id, username, display_name, role, password_hash, active FROM users
WHERE user_id = $user_id;

-- name: list_users
SELECT u.user_id, u.username, u.display_name, u.role, u.active, u.created_at,
    u.password_hash IS NOT NULL AS has_password,
    (SELECT group_concat(a.kind || ':' || a.target, ', ') FROM assignments a
     WHERE a.user_id = u.user_id) AS assigned
FROM users u ORDER BY u.username;

-- name: set_password
UPDATE users SET password_hash = $password_hash, password_changed_at = $now
WHERE username = $username;

-- name: set_active
UPDATE users SET active = $active WHERE username = $username;

-- name: insert_assignment
INSERT OR IGNORE INTO assignments (user_id, kind, target, assigned_at)
VALUES ($user_id, $kind, $target, $now);

-- name: delete_assignment
DELETE FROM assignments WHERE user_id = $user_id AND kind = $kind AND target = $target;

-- name: assignments_of
SELECT kind, target FROM assignments WHERE user_id = $user_id ORDER BY kind, target;

-- name: insert_session
INSERT INTO sessions (token_hash, user_id, csrf_token, auth_mode, created_at, last_seen)
VALUES ($token_hash, $user_id, $csrf_token, $auth_mode, $now, $now);

-- name: session_by_hash
SELECT token_hash, user_id, csrf_token, auth_mode, created_at, last_seen FROM sessions
WHERE token_hash = $token_hash;

-- name: touch_session
UPDATE sessions SET last_seen = $now WHERE token_hash = $token_hash;

-- name: delete_session
DELETE FROM sessions WHERE token_hash = $token_hash;

-- name: delete_user_sessions
DELETE FROM sessions WHERE user_id = $user_id;

-- name: delete_stale_sessions
DELETE FROM sessions WHERE last_seen < $idle_before OR created_at < $created_before;

-- name: insert_review
INSERT INTO reviews (review_id, pupil_id, term, run_id, network_id, school_code, decision,
    dismiss_reason, step, reviewer, reviewer_role, reviewed_at, responsible, next_step_date,
    prev_hash, row_hash, chain_version)
VALUES ($review_id, $pupil_id, $term, $run_id, $network_id, $school_code, $decision,
    $dismiss_reason, $step, $reviewer, $reviewer_role, $reviewed_at, $responsible, $next_step_date,
    $prev_hash, $row_hash, 1)
RETURNING review_id;

-- name: reviews_of_pupil
SELECT review_id, pupil_id, term, run_id, network_id, school_code, decision, dismiss_reason,
    step, reviewer, reviewer_role, reviewed_at, responsible, next_step_date
FROM reviews WHERE pupil_id = $pupil_id ORDER BY review_id DESC;

-- name: latest_reviews
SELECT r.review_id, r.pupil_id, r.term, r.run_id, r.network_id, r.school_code, r.decision,
    r.dismiss_reason, r.step, r.reviewer, r.reviewer_role, r.reviewed_at, r.responsible,
    r.next_step_date
FROM reviews r
JOIN (SELECT pupil_id, max(review_id) AS review_id FROM reviews
      WHERE term <= $term GROUP BY pupil_id) last USING (review_id);

-- name: all_reviews
-- For the pipeline's copy (reviews_decisions): the responsible person's role, never a name.
SELECT r.review_id, r.pupil_id, r.term, r.run_id, r.network_id, r.school_code, r.decision,
    r.dismiss_reason, r.step, r.reviewer_role, r.reviewed_at, u.role AS responsible_role,
    r.next_step_date
FROM reviews r LEFT JOIN users u ON u.username = r.responsible
ORDER BY r.review_id;

-- name: all_reviews_before_followup
SELECT review_id, pupil_id, term, run_id, network_id, school_code, decision, dismiss_reason,
    step, reviewer_role, reviewed_at, NULL AS responsible_role, NULL AS next_step_date
FROM reviews ORDER BY review_id;

-- name: all_reviews_named
-- Every review with the responsible person (the app's follow-up summary).
SELECT review_id, pupil_id, term, run_id, network_id, school_code, decision, dismiss_reason,
    step, reviewer, reviewer_role, reviewed_at, responsible, next_step_date
FROM reviews ORDER BY review_id;

-- name: insert_audit
INSERT INTO audit_log (audit_id, at, username, role, action, object_type, object_id, run_id,
    purpose, outcome, http_status, path, client, prev_hash, row_hash, chain_version)
VALUES ($audit_id, $at, $username, $role, $action, $object_type, $object_id, $run_id, $purpose,
    $outcome, $http_status, $path, $client, $prev_hash, $row_hash, 1)
RETURNING audit_id;

-- name: read_audit
SELECT audit_id, at, username, role, action, object_type, object_id, run_id, purpose, outcome,
    http_status, path, client
FROM audit_log
WHERE ($username IS NULL OR username = $username)
  AND ($object_id IS NULL OR object_id = $object_id)
  AND ($outcome IS NULL OR outcome = $outcome)
  AND ($before_id IS NULL OR audit_id < $before_id)
ORDER BY audit_id DESC LIMIT $limit;

-- name: failed_logins
-- Failed logins of a user name in the window, counted from its latest unlock ('ews users unlock').
SELECT count(*) FROM audit_log
WHERE username = $username AND action = 'login' AND outcome = 'denied'
  AND at >= max($since, coalesce((SELECT max(at) FROM audit_log
                                  WHERE action = 'unlock' AND object_type = 'user'
                                    AND object_id = $username AND outcome = 'allowed'), ''));

-- name: failed_logins_of_client
SELECT count(*) FROM audit_log
WHERE client = $client AND action = 'login' AND outcome = 'denied' AND at >= $since;

-- name: insert_verification
INSERT INTO chain_verifications (at, ok, summary, audit_rows, review_rows, checkpoints, by)
VALUES ($at, $ok, $summary, $audit_rows, $review_rows, $checkpoints, $by);

-- name: last_verification
SELECT at, ok, summary, audit_rows, review_rows, checkpoints, by FROM chain_verifications
ORDER BY verification_id DESC LIMIT 1;
