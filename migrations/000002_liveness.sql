-- Writes: state-change-only checkpoints, set-based heartbeats and the offline sweep.

-- Places one checkpoint in time order, keeping "no two consecutive checkpoints with the same state":
-- returns NULL when the state at p_ts already is p_state; removes a later row it makes redundant.
-- Caller holds the user's session row lock.
CREATE FUNCTION ck_place_checkpoint(
  p_user text, p_state text, p_ts timestamptz, p_content jsonb, p_source text, p_received timestamptz
) RETURNS checkpoints LANGUAGE plpgsql AS $$
DECLARE
  v_prev text;
  v_next checkpoints;
  v_row checkpoints;
BEGIN
  SELECT c.state INTO v_prev FROM checkpoints c
   WHERE c.user_id = p_user AND c.ts <= p_ts ORDER BY c.ts DESC, c.id DESC LIMIT 1;
  IF v_prev IS NOT DISTINCT FROM p_state THEN
    RETURN NULL;
  END IF;
  INSERT INTO checkpoints (user_id, state, ts, content, source, received_at)
  VALUES (p_user, p_state, p_ts, p_content, p_source, p_received)
  RETURNING * INTO v_row;
  SELECT * INTO v_next FROM checkpoints c
   WHERE c.user_id = p_user AND c.ts > p_ts ORDER BY c.ts, c.id LIMIT 1;
  IF v_next.state = p_state THEN
    DELETE FROM checkpoints c WHERE c.id = v_next.id;
  END IF;
  RETURN v_row;
END $$;

-- Session = the user's latest checkpoint; last_heartbeat only moves forward.
CREATE FUNCTION ck_sync_session(p_user text, p_heartbeat timestamptz) RETURNS user_sessions
LANGUAGE sql AS $$
  UPDATE user_sessions s
     SET current_state = l.state, state_since = l.ts,
         last_heartbeat = greatest(s.last_heartbeat, p_heartbeat), updated_at = now()
    FROM (SELECT c.state, c.ts FROM checkpoints c WHERE c.user_id = p_user
           ORDER BY c.ts DESC, c.id DESC LIMIT 1) l
   WHERE s.user_id = p_user
  RETURNING s.*
$$;

-- Locks (creating if needed) a user's session row, and writes the Offline a missed sweep owes:
-- a user silent past the timeout went Offline at last_heartbeat + timeout, whenever we notice.
CREATE FUNCTION ck_lock_session(p_user text, p_now timestamptz, p_timeout interval)
RETURNS user_sessions LANGUAGE plpgsql AS $$
DECLARE
  v_s user_sessions;
BEGIN
  -- A placeholder row (never visible outside this transaction) gives new users a row to lock.
  INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
  VALUES (p_user, 'Offline', '-infinity', '-infinity') ON CONFLICT (user_id) DO NOTHING;
  SELECT * INTO v_s FROM user_sessions s WHERE s.user_id = p_user FOR UPDATE;
  IF v_s.current_state <> 'Offline' AND v_s.last_heartbeat + p_timeout < p_now THEN
    PERFORM ck_place_checkpoint(p_user, 'Offline', v_s.last_heartbeat + p_timeout, NULL, 'timeout', p_now);
    v_s := ck_sync_session(p_user, '-infinity');
  END IF;
  RETURN v_s;
END $$;

-- A client checkpoint. Returns the stored row and changed = true, or the current state and
-- changed = false when the user already was in p_state at p_ts.
CREATE FUNCTION ck_record_checkpoint(
  p_user text, p_state text, p_ts timestamptz, p_content jsonb, p_now timestamptz, p_timeout interval
) RETURNS TABLE (
  id bigint, user_id text, state text, ts timestamptz, content jsonb, source text,
  received_at timestamptz, changed boolean, previous_state text
) LANGUAGE plpgsql AS $$
DECLARE
  v_row checkpoints;
  v_prev text;
  v_s user_sessions;
BEGIN
  PERFORM ck_lock_session(p_user, p_now, p_timeout);
  SELECT c.state INTO v_prev FROM checkpoints c
   WHERE c.user_id = p_user AND c.ts <= p_ts ORDER BY c.ts DESC, c.id DESC LIMIT 1;
  v_row := ck_place_checkpoint(p_user, p_state, p_ts, p_content, 'client', p_now);
  v_s := ck_sync_session(p_user, p_now);
  IF v_row.id IS NULL THEN
    RETURN QUERY SELECT NULL::bigint, p_user, p_state, p_ts, p_content, 'client'::text, p_now, false, v_prev;
  ELSE
    RETURN QUERY SELECT v_row.id, v_row.user_id, v_row.state, v_row.ts, v_row.content, v_row.source,
                        v_row.received_at, true, v_prev;
  END IF;
END $$;

-- Heartbeats for any number of users in one call: newest time per user wins. Unknown or Offline users
-- become Online at their heartbeat (source 'heartbeat'); users silent past the timeout first get their
-- Offline gap; everyone else only moves last_heartbeat. Rows are locked in user_id order so concurrent
-- batches cannot deadlock.
CREATE FUNCTION ck_heartbeat(p_users text[], p_ts timestamptz[], p_timeout interval)
RETURNS TABLE (user_id text, state text, state_since timestamptz, last_heartbeat timestamptz, changed boolean)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_sessions AS s (user_id, current_state, state_since, last_heartbeat)
  SELECT DISTINCT u.u, 'Offline', '-infinity'::timestamptz, '-infinity'::timestamptz
    FROM unnest(p_users) AS u(u) ORDER BY 1
  ON CONFLICT ON CONSTRAINT user_sessions_pkey DO NOTHING;

  RETURN QUERY
  WITH input AS (
    SELECT i.u AS uid, max(i.t) AS hb FROM unnest(p_users, p_ts) AS i(u, t) GROUP BY i.u
  ), locked AS (
    SELECT s.user_id AS uid, s.current_state, s.state_since, s.last_heartbeat
      FROM user_sessions s WHERE s.user_id IN (SELECT input.uid FROM input)
     ORDER BY s.user_id FOR UPDATE
  ), cls AS (
    SELECT i.uid, i.hb, l.current_state, l.state_since, l.last_heartbeat,
           CASE WHEN l.current_state = 'Offline' THEN 'revive'
                WHEN l.last_heartbeat + p_timeout < i.hb THEN 'gap'
                ELSE 'alive' END AS kind
      FROM input i JOIN locked l USING (uid)
  ), ins AS (
    INSERT INTO checkpoints (user_id, state, ts, source)
    SELECT cls.uid, 'Offline', cls.last_heartbeat + p_timeout, 'timeout' FROM cls WHERE kind = 'gap'
    UNION ALL
    -- Never before the Offline it follows (a heartbeat flushed late after the sweep ran).
    SELECT cls.uid, 'Online',
           CASE WHEN kind = 'revive' THEN greatest(cls.hb, cls.state_since) ELSE cls.hb END, 'heartbeat'
      FROM cls WHERE kind <> 'alive'
    RETURNING 1
  ), upd AS (
    UPDATE user_sessions s
       SET current_state = CASE WHEN kind = 'alive' THEN cls.current_state ELSE 'Online' END,
           state_since = CASE WHEN kind = 'alive' THEN cls.state_since
                              WHEN kind = 'revive' THEN greatest(cls.hb, cls.state_since) ELSE cls.hb END,
           last_heartbeat = greatest(cls.last_heartbeat, cls.hb),
           updated_at = now()
      FROM cls WHERE s.user_id = cls.uid
    RETURNING s.user_id, s.current_state, s.state_since, s.last_heartbeat, cls.kind <> 'alive' AS changed
  )
  SELECT upd.user_id, upd.current_state, upd.state_since, upd.last_heartbeat, upd.changed
    FROM upd, (SELECT count(*) FROM ins) AS forced;
END $$;

-- The offline sweep: one statement over the partial expiry index, costing in proportion to the users
-- who expired. Offline is stamped last_heartbeat + timeout, not the time the sweep ran.
-- SKIP LOCKED lets a concurrent writer of a user win; it records the gap itself.
CREATE FUNCTION ck_sweep_offline(p_timeout interval, p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 100000)
RETURNS integer LANGUAGE sql AS $$
  WITH expired AS (
    SELECT s.user_id FROM user_sessions s
     WHERE s.current_state <> 'Offline' AND s.last_heartbeat < p_now - p_timeout
     ORDER BY s.last_heartbeat LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  ), upd AS (
    UPDATE user_sessions s
       SET current_state = 'Offline', state_since = s.last_heartbeat + p_timeout, updated_at = now()
      FROM expired e WHERE s.user_id = e.user_id
    RETURNING s.user_id, s.state_since
  ), ins AS (
    INSERT INTO checkpoints (user_id, state, ts, source)
    SELECT upd.user_id, 'Offline', upd.state_since, 'timeout' FROM upd
    RETURNING 1
  )
  SELECT count(*)::integer FROM ins
$$;
