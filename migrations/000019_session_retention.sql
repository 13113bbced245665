-- Retention covers the session histories too (docs/retention.md): session_checkpoints and manual_presence
-- older than the cutoff are deleted like checkpoints, walked from a stored position so a run costs what
-- newly left the window.

ALTER TABLE retention_progress
  ADD COLUMN sessions_ts timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN sessions_id bigint NOT NULL DEFAULT 0,
  ADD COLUMN manual_ts timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN manual_id bigint NOT NULL DEFAULT 0;

CREATE INDEX manual_presence_set_at ON manual_presence (set_at, id);

-- What a recompute from inside the window reads of the time before it: each session's latest row (its
-- state when the window opens) and each user's latest manual presence. So, per (user, session), rows
-- before the newest old one go; that one goes too when it ended the session (Offline): an ended session
-- and an absent one read alike. Per user, manual rows before the newest old one go; that one goes too
-- when it was a clear or had expired before the cutoff.
CREATE FUNCTION ck_delete_old_session_history(p_before timestamptz, p_batch integer, OUT deleted integer, OUT passed integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_s_ts timestamptz; v_s_id bigint; v_m_ts timestamptz; v_m_id bigint;
  v_s_del integer; v_s_passed integer; v_m_del integer; v_m_passed integer;
BEGIN
  SELECT p.sessions_ts, p.sessions_id, p.manual_ts, p.manual_id INTO v_s_ts, v_s_id, v_m_ts, v_m_id
    FROM retention_progress p FOR UPDATE;

  WITH batch AS (
    SELECT c.user_id, c.session_id, c.ts, c.id, c.state FROM session_checkpoints c
     WHERE (c.ts, c.id) > (v_s_ts, v_s_id) AND c.ts < p_before
     ORDER BY c.ts, c.id LIMIT p_batch
  ), keep AS (
    SELECT DISTINCT ON (x.user_id, x.session_id) x.* FROM batch x ORDER BY x.user_id, x.session_id, x.ts DESC, x.id DESC
  ), gone AS (
    DELETE FROM session_checkpoints c USING keep k
     WHERE c.user_id = k.user_id AND c.session_id = k.session_id
       AND ((c.ts, c.id) < (k.ts, k.id) OR (c.id = k.id AND k.state = 'Offline'))
    RETURNING 1
  ), moved AS (
    UPDATE retention_progress p SET sessions_ts = l.ts, sessions_id = l.id
      FROM (SELECT x.ts, x.id FROM batch x ORDER BY x.ts DESC, x.id DESC LIMIT 1) l
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM batch)::integer INTO v_s_del, v_s_passed;

  WITH batch AS (
    SELECT m.user_id, m.set_at, m.id, m.state, m.until FROM manual_presence m
     WHERE (m.set_at, m.id) > (v_m_ts, v_m_id) AND m.set_at < p_before
     ORDER BY m.set_at, m.id LIMIT p_batch
  ), keep AS (
    SELECT DISTINCT ON (x.user_id) x.* FROM batch x ORDER BY x.user_id, x.set_at DESC, x.id DESC
  ), gone AS (
    DELETE FROM manual_presence m USING keep k
     WHERE m.user_id = k.user_id
       AND ((m.set_at, m.id) < (k.set_at, k.id)
            OR (m.id = k.id AND (k.state IS NULL OR k.until < p_before)))
    RETURNING 1
  ), moved AS (
    UPDATE retention_progress p SET manual_ts = l.set_at, manual_id = l.id
      FROM (SELECT x.set_at, x.id FROM batch x ORDER BY x.set_at DESC, x.id DESC LIMIT 1) l
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM batch)::integer INTO v_m_del, v_m_passed;
  deleted := v_s_del + v_m_del;
  passed := greatest(v_s_passed, v_m_passed);
END $$;

-- One owner for the expiry instant: idle decay compares against it rather than restating it.
CREATE OR REPLACE FUNCTION ck_session_idle(p_state text, p_last_heartbeat timestamptz, p_last_active timestamptz, p_timeout interval, p_idle interval)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_state = 'Online' AND p_idle > interval '0'
               AND p_last_active + p_idle < ck_session_expiry(p_last_heartbeat, p_timeout)
              THEN p_last_active + p_idle END
$$;
