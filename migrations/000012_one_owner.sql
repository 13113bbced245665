-- One owner per rule. Each rule below had copies in SQL and TypeScript; now it lives in one function and
-- every reader and writer calls it. Functions first written in earlier migrations are redefined here
-- (landed migrations are never edited).

-- The liveness rule (docs/time-model.md): a user who is not Offline and whose heartbeat ran out is
-- Offline from last_heartbeat + timeout (never before their stored state began). NULL while alive or
-- already Offline. Status, the timeline, summaries, the sweep and every writer ask this function.
CREATE FUNCTION ck_expired_at(
  p_state text, p_since timestamptz, p_last_heartbeat timestamptz, p_at timestamptz, p_timeout interval
) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_state <> 'Offline' AND p_last_heartbeat + p_timeout < p_at
              THEN greatest(p_last_heartbeat + p_timeout, p_since) END
$$;

-- The state a session row means at p_at.
CREATE FUNCTION ck_effective_state(
  p_state text, p_since timestamptz, p_last_heartbeat timestamptz, p_at timestamptz, p_timeout interval
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN ck_expired_at(p_state, p_since, p_last_heartbeat, p_at, p_timeout) IS NULL THEN p_state ELSE 'Offline' END
$$;

-- Users' status as the API reports it. p_pending: a heartbeat an instance acknowledged and has not
-- flushed yet (NULL: none); it counts as stored.
CREATE FUNCTION ck_status(p_users text[], p_pending timestamptz[], p_now timestamptz, p_timeout interval)
RETURNS TABLE (user_id text, state text, online boolean, state_since float8, last_heartbeat float8)
LANGUAGE sql STABLE AS $$
  SELECT s.user_id, t.name, t.online, ck_ms(coalesce(x.e, s.state_since)), ck_ms(h.hb)
    FROM unnest(p_users, p_pending) AS i(u, pending)
    JOIN user_sessions s ON s.user_id = i.u
    CROSS JOIN LATERAL (SELECT greatest(s.last_heartbeat, i.pending) AS hb) h
    CROSS JOIN LATERAL (SELECT ck_expired_at(s.current_state, s.state_since, h.hb, p_now, p_timeout) AS e) x
    JOIN state_types t ON t.name = CASE WHEN x.e IS NULL THEN s.current_state ELSE 'Offline' END
$$;

-- The state a checkpoint replaced: the user's previous checkpoint in time order. Events, webhooks and the
-- checkpoint write all report it from here.
CREATE FUNCTION ck_previous_state(p_user text, p_ts timestamptz, p_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT p.state FROM checkpoints p WHERE p.user_id = p_user AND (p.ts, p.id) < (p_ts, p_id)
   ORDER BY p.ts DESC, p.id DESC LIMIT 1
$$;

CREATE OR REPLACE FUNCTION ck_events(p_ids bigint[]) RETURNS TABLE (
  id bigint, user_id text, state text, previous_state text, ts timestamptz, source text, content jsonb
) LANGUAGE sql STABLE AS $$
  SELECT c.id, c.user_id, c.state, ck_previous_state(c.user_id, c.ts, c.id), c.ts, c.source, c.content
    FROM checkpoints c WHERE c.id = ANY(p_ids) ORDER BY c.id
$$;

CREATE OR REPLACE FUNCTION ck_lock_session(p_user text, p_now timestamptz, p_timeout interval)
RETURNS user_sessions LANGUAGE plpgsql AS $$
DECLARE
  v_s user_sessions;
  v_expired timestamptz;
BEGIN
  -- A placeholder row (never visible outside this transaction) gives new users a row to lock.
  INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
  VALUES (p_user, 'Offline', '-infinity', '-infinity') ON CONFLICT (user_id) DO NOTHING;
  SELECT * INTO v_s FROM user_sessions s WHERE s.user_id = p_user FOR UPDATE;
  v_expired := ck_expired_at(v_s.current_state, v_s.state_since, v_s.last_heartbeat, p_now, p_timeout);
  IF v_expired IS NOT NULL THEN
    PERFORM ck_place_checkpoint(p_user, 'Offline', v_expired, NULL, 'timeout', p_now);
    v_s := ck_sync_session(p_user, '-infinity');
  END IF;
  RETURN v_s;
END $$;

CREATE OR REPLACE FUNCTION ck_record_checkpoint(
  p_user text, p_state text, p_ts timestamptz, p_content jsonb, p_now timestamptz, p_timeout interval
) RETURNS TABLE (
  id bigint, user_id text, state text, ts timestamptz, content jsonb, source text,
  received_at timestamptz, changed boolean, previous_state text
) LANGUAGE plpgsql AS $$
DECLARE
  v_row checkpoints;
BEGIN
  PERFORM ck_lock_session(p_user, p_now, p_timeout);
  v_row := ck_place_checkpoint(p_user, p_state, p_ts, p_content, 'client', p_now);
  PERFORM ck_sync_session(p_user, p_now);
  IF v_row.id IS NULL THEN
    RETURN QUERY SELECT NULL::bigint, p_user, p_state, p_ts, p_content, 'client'::text, p_now, false, NULL::text;
  ELSE
    RETURN QUERY SELECT v_row.id, v_row.user_id, v_row.state, v_row.ts, v_row.content, v_row.source,
                        v_row.received_at, true, ck_previous_state(p_user, v_row.ts, v_row.id);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION ck_heartbeat(p_users text[], p_ts timestamptz[], p_timeout interval)
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
           ck_expired_at(l.current_state, l.state_since, l.last_heartbeat, i.hb, p_timeout) AS expired_at,
           CASE WHEN l.current_state = 'Offline' THEN 'revive'
                WHEN ck_expired_at(l.current_state, l.state_since, l.last_heartbeat, i.hb, p_timeout) IS NOT NULL THEN 'gap'
                ELSE 'alive' END AS kind
      FROM input i JOIN locked l USING (uid)
  ), ins AS (
    INSERT INTO checkpoints (user_id, state, ts, source)
    SELECT cls.uid, 'Offline', cls.expired_at, 'timeout' FROM cls WHERE kind = 'gap'
    UNION ALL
    -- Never before the state it follows (a heartbeat flushed late after the sweep ran).
    SELECT cls.uid, 'Online',
           CASE WHEN kind = 'revive' THEN greatest(cls.hb, cls.state_since) ELSE greatest(cls.hb, cls.expired_at) END, 'heartbeat'
      FROM cls WHERE kind <> 'alive'
    RETURNING 1
  ), upd AS (
    UPDATE user_sessions s
       SET current_state = CASE WHEN kind = 'alive' THEN cls.current_state ELSE 'Online' END,
           state_since = CASE WHEN kind = 'alive' THEN cls.state_since
                              WHEN kind = 'revive' THEN greatest(cls.hb, cls.state_since)
                              ELSE greatest(cls.hb, cls.expired_at) END,
           last_heartbeat = greatest(cls.last_heartbeat, cls.hb),
           updated_at = now()
      FROM cls WHERE s.user_id = cls.uid
    RETURNING s.user_id, s.current_state, s.state_since, s.last_heartbeat, cls.kind <> 'alive' AS changed
  )
  SELECT upd.user_id, upd.current_state, upd.state_since, upd.last_heartbeat, upd.changed
    FROM upd, (SELECT count(*) FROM ins) AS forced;
END $$;

CREATE OR REPLACE FUNCTION ck_heartbeat_alive(p_users text[], p_ms bigint[], p_timeout interval)
RETURNS TABLE (user_id text, state text, state_since float8, last_heartbeat float8)
LANGUAGE sql AS $$
  WITH i AS (
    SELECT x.u, max(to_timestamp(x.ms::float8 / 1000)) AS hb FROM unnest(p_users, p_ms) AS x(u, ms)
     GROUP BY x.u ORDER BY x.u
  )
  UPDATE user_sessions s
     SET last_heartbeat = greatest(s.last_heartbeat, i.hb), updated_at = now()
    FROM i
   WHERE s.user_id = i.u AND s.current_state <> 'Offline'
     AND ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, i.hb, p_timeout) IS NULL
  RETURNING s.user_id, s.current_state, ck_ms(s.state_since), ck_ms(s.last_heartbeat)
$$;

CREATE OR REPLACE FUNCTION ck_sweep_offline(p_timeout interval, p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 100000)
RETURNS integer LANGUAGE sql AS $$
  WITH expired AS (
    SELECT s.ctid AS tid FROM user_sessions s
     WHERE s.current_state <> 'Offline' AND s.expiry_bucket < p_now - p_timeout
       AND ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, p_now, p_timeout) IS NOT NULL
     ORDER BY s.expiry_bucket LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  ), upd AS (
    UPDATE user_sessions s
       SET current_state = 'Offline',
           state_since = ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, p_now, p_timeout),
           updated_at = now()
     WHERE s.ctid = ANY (ARRAY(SELECT tid FROM expired))
    RETURNING s.user_id, s.state_since
  ), ins AS (
    INSERT INTO checkpoints (user_id, state, ts, source)
    SELECT upd.user_id, 'Offline', upd.state_since, 'timeout' FROM upd
    RETURNING 1
  )
  SELECT count(*)::integer FROM ins
$$;

CREATE OR REPLACE FUNCTION ck_intervals(p_users text[], p_from timestamptz, p_to timestamptz, p_now timestamptz, p_timeout interval)
RETURNS TABLE (user_id text, state text, s timestamptz, e timestamptz)
LANGUAGE sql STABLE AS $$
  WITH u AS (SELECT DISTINCT x AS uid FROM unnest(p_users) AS x),
  r AS (
    SELECT b.user_id, b.state, b.ts, b.id FROM u CROSS JOIN LATERAL (
      SELECT c.user_id, c.state, c.ts, c.id FROM checkpoints c
       WHERE c.user_id = u.uid AND c.ts <= p_from ORDER BY c.ts DESC, c.id DESC LIMIT 1) b
    UNION ALL
    SELECT c.user_id, c.state, c.ts, c.id FROM checkpoints c JOIN u ON c.user_id = u.uid
     WHERE c.ts > p_from AND c.ts < p_to
    UNION ALL
    SELECT a.user_id, a.state, a.ts, a.id FROM u CROSS JOIN LATERAL (
      SELECT c.user_id, c.state, c.ts, c.id FROM checkpoints c
       WHERE c.user_id = u.uid AND c.ts >= p_to ORDER BY c.ts, c.id LIMIT 1) a
  ), iv AS (
    SELECT r.user_id, r.state, r.ts AS s, lead(r.ts) OVER (PARTITION BY r.user_id ORDER BY r.ts, r.id) AS nxt FROM r
  ), ends AS (
    SELECT iv.user_id, iv.state, iv.s, iv.nxt,
           CASE WHEN iv.nxt IS NULL THEN ck_expired_at(iv.state, iv.s, ss.last_heartbeat, p_now, p_timeout) END AS expired_at
      FROM iv LEFT JOIN user_sessions ss ON ss.user_id = iv.user_id
  ), a AS (
    SELECT ends.user_id, ends.state, ends.s, coalesce(ends.nxt, ends.expired_at, p_now) AS e FROM ends
    UNION ALL
    SELECT ends.user_id, 'Offline', ends.expired_at, p_now FROM ends WHERE ends.expired_at IS NOT NULL
  )
  SELECT a.user_id, a.state, greatest(a.s, p_from), least(a.e, p_to, p_now) FROM a
   WHERE least(a.e, p_to, p_now) > greatest(a.s, p_from)
$$;

-- Settings ck keeps for all its instances (the generated per-user token secret).
CREATE TABLE ck_settings (
  name       text PRIMARY KEY,
  value      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Finished webhook deliveries are kept p_keep for GET /webhooks/:id/deliveries, then deleted in bounded
-- batches (pending ones never get that old: they fail after 24 h). A function, so pg_cron can run it too.
CREATE FUNCTION ck_prune_webhook_deliveries(p_keep interval, p_limit integer DEFAULT 50000) RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM webhook_deliveries WHERE id IN (
      SELECT d.id FROM webhook_deliveries d WHERE d.created_at < now() - p_keep AND d.status <> 'pending' LIMIT p_limit)
    RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;
