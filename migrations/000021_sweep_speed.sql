-- A cheaper sweep settle and event log (docs/performance.md). Same results; less work per user.

-- Settling: the idle part is skipped when decay is off (it read every session of the users for
-- nothing), and the expiry part marks the user row's event_xid in the UPDATE it already makes, so the
-- event-log trigger that follows finds the row marked and writes nothing. A later transaction's mark is
-- kept (greatest), so the trigger still refuses it. From 000015_sessions, the latest definition.
CREATE OR REPLACE FUNCTION ck_settle(p_users text[], p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (user_id text, at timestamptz) LANGUAGE plpgsql AS $$
BEGIN
  IF p_idle > interval '0' THEN
    RETURN QUERY
    WITH due AS (
      SELECT s.user_id, s.session_id, ck_session_idle(s.state, s.last_heartbeat, s.last_active, p_timeout, p_idle) AS at
        FROM sessions s WHERE s.user_id = ANY (p_users)
    ), marked AS (
      UPDATE sessions s SET state = 'Away', state_since = d.at
        FROM due d WHERE s.user_id = d.user_id AND s.session_id = d.session_id AND d.at < p_now
      RETURNING s.user_id, s.session_id, d.at
    ), logged AS (
      INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
      SELECT m.user_id, m.session_id, 'Away', m.at, 'idle', p_now FROM marked m ORDER BY m.at
      RETURNING 1
    )
    SELECT m.user_id, m.at FROM marked m, (SELECT count(*) FROM logged) AS done;
  END IF;

  RETURN QUERY
  WITH gone AS (
    DELETE FROM sessions s WHERE s.user_id = ANY (p_users) AND ck_session_expiry(s.last_heartbeat, p_timeout) < p_now
    RETURNING s.user_id, s.session_id, s.last_heartbeat, ck_session_expiry(s.last_heartbeat, p_timeout) AS at
  ), logged AS (
    INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
    SELECT g.user_id, g.session_id, 'Offline', g.at, 'timeout', p_now FROM gone g ORDER BY g.at
    RETURNING 1
  ), seen AS (
    UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, x.hb),
                               event_xid = greatest(u.event_xid, pg_current_xact_id())
      FROM (SELECT g.user_id, max(g.last_heartbeat) AS hb FROM gone g GROUP BY g.user_id) x WHERE u.user_id = x.user_id
    RETURNING 1
  )
  SELECT g.user_id, g.at FROM gone g, (SELECT count(*) FROM logged) AS a, (SELECT count(*) FROM seen) AS b;

  RETURN QUERY
  WITH ended AS (
    UPDATE user_sessions u SET manual_state = NULL, manual_until = NULL
      FROM (SELECT o.user_id, o.manual_until FROM user_sessions o
             WHERE o.user_id = ANY (p_users) AND o.manual_until < p_now) o
     WHERE u.user_id = o.user_id
    RETURNING u.user_id, o.manual_until AS at
  )
  SELECT e.user_id, e.at FROM ended e;
END $$;

-- The event log: one pass over the users' rows both checks for a later transaction's events and tells
-- whether any row still needs this transaction's mark; the UPDATE runs only then (a recompute's
-- timeline rows follow its session rows, whose trigger already marked the users). From 000015_sessions.
CREATE OR REPLACE FUNCTION ck_log_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_later boolean;
  v_unmarked boolean;
BEGIN
  SELECT bool_or(s.event_xid > pg_current_xact_id()), bool_or(s.event_xid IS DISTINCT FROM pg_current_xact_id())
    INTO v_later, v_unmarked
    FROM user_sessions s WHERE s.user_id IN (SELECT n.user_id FROM new_rows n);
  IF v_later THEN
    RAISE EXCEPTION 'a later transaction wrote events of the same user first; retry'
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF v_unmarked THEN
    UPDATE user_sessions s SET event_xid = pg_current_xact_id()
     WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid IS DISTINCT FROM pg_current_xact_id();
  END IF;
  IF TG_TABLE_NAME = 'checkpoints' THEN
    INSERT INTO events (id, type, user_id, session_id, state, previous_state, ts, source, content)
    SELECT n.id, 'state', n.user_id, n.session_id, n.state, ck_previous_state(n.user_id, n.ts, n.id), n.ts, n.source, n.content
      FROM new_rows n ORDER BY n.id;
  ELSE
    -- A session event has an id of its own: the user's change it causes takes the checkpoint's.
    INSERT INTO events (id, type, user_id, session_id, state, previous_state, ts, source, content)
    SELECT nextval(pg_get_serial_sequence('checkpoints', 'id')), 'session', n.user_id, n.session_id, n.state,
           (SELECT p.state FROM session_checkpoints p WHERE p.user_id = n.user_id AND p.session_id = n.session_id
               AND (p.ts, p.id) < (n.ts, n.id) ORDER BY p.ts DESC, p.id DESC LIMIT 1),
           n.ts, n.source, n.content
      FROM new_rows n ORDER BY n.id;
  END IF;
  RETURN NULL;
END $$;

-- A sweep of 100,000 users sorts and hashes a few hundred thousand rows per step: with the default 4MB
-- they spilled to disk.
ALTER FUNCTION ck_settle(text[], timestamptz, interval, interval) SET work_mem = '64MB';
ALTER FUNCTION ck_recompute(text[], timestamptz[], timestamptz) SET work_mem = '64MB';
ALTER FUNCTION ck_sweep_offline(interval, timestamptz, integer, interval) SET work_mem = '64MB';
