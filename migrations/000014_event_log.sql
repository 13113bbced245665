-- State changes at scale (docs/events.md, docs/ingest.md): an append-only event log read in commit-safe
-- order, no NOTIFY inside write transactions, and set-based writers for batches of checkpoints.

-- The event log: one row per state change, as it was announced, with the id of the checkpoint that
-- made it (the event id clients see). The timeline may be rewritten by back-fills; the log is not.
-- Streams and webhooks read it. `xid` is the writing transaction: readers hand events out in (xid, id)
-- order and only below the oldest transaction still running (pg_snapshot_xmin), so an event whose
-- transaction commits late can never fall behind a cursor.
CREATE TABLE events (
  id             bigint PRIMARY KEY,
  xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
  user_id        text NOT NULL,
  state          text NOT NULL,
  previous_state text,
  ts             timestamptz NOT NULL,
  source         text NOT NULL,
  content        jsonb,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_position ON events (xid, id);
CREATE INDEX events_user_position ON events (user_id, xid, id);
CREATE INDEX events_created ON events (created_at);

-- Per user, event transactions must be in xid order too: the transaction that wrote a user's latest
-- events. A writer whose own xid is older (it got its xid before waiting for this user's lock) would
-- put its event before one it follows; it fails with 40001 and the writer retries with a new xid.
ALTER TABLE user_sessions ADD COLUMN event_xid xid8;

-- Every new checkpoint is an event: appended to the log in the same statement, in insert order.
CREATE FUNCTION ck_log_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM user_sessions s
              WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid > pg_current_xact_id()) THEN
    RAISE EXCEPTION 'a later transaction wrote events of the same user first; retry'
      USING ERRCODE = 'serialization_failure';
  END IF;
  UPDATE user_sessions s SET event_xid = pg_current_xact_id()
   WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid IS DISTINCT FROM pg_current_xact_id();
  INSERT INTO events (id, user_id, state, previous_state, ts, source, content)
  SELECT n.id, n.user_id, n.state, ck_previous_state(n.user_id, n.ts, n.id), n.ts, n.source, n.content
    FROM new_rows n ORDER BY n.id;
  RETURN NULL;
END $$;

CREATE TRIGGER checkpoints_events AFTER INSERT ON checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_log_events();

-- No NOTIFY inside writers: at commit it takes a lock that serialized every state-change commit in the
-- database. Instances poll the log and are woken after commits (src/events/hub.ts).
DROP TRIGGER checkpoints_notify ON checkpoints;
DROP FUNCTION ck_notify_checkpoints();

-- The newest position every reader may hand out: below the oldest transaction still running.
CREATE FUNCTION ck_event_frontier() RETURNS xid8 LANGUAGE sql STABLE AS $$
  SELECT pg_snapshot_xmin(pg_current_snapshot())
$$;

-- Webhook deliveries are enqueued from the log: one event definition for streams and webhooks.
DROP TRIGGER checkpoints_webhooks ON checkpoints;
ALTER TABLE webhook_deliveries RENAME COLUMN checkpoint_id TO event_id;
ALTER TABLE webhook_deliveries RENAME CONSTRAINT webhook_deliveries_webhook_id_checkpoint_id_key TO webhook_deliveries_webhook_id_event_id_key;

CREATE OR REPLACE FUNCTION ck_webhooks_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhooks) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_deliveries (webhook_id, event_id, user_id, event, next_attempt_at)
  SELECT w.id, e.id, e.user_id,
         jsonb_build_object('id', e.id::text, 'user_id', e.user_id, 'state', e.state,
                            'previous_state', e.previous_state, 'ts', ck_ms(e.ts), 'source', e.source,
                            'content', e.content),
         greatest(now(), (SELECT q.next_attempt_at FROM webhook_deliveries q
                           WHERE q.webhook_id = w.id AND q.user_id = e.user_id AND q.status = 'pending'
                           ORDER BY q.event_id LIMIT 1))
    FROM new_rows e
    JOIN webhooks w ON (w.user_ids IS NULL OR e.user_id = ANY (w.user_ids))
                   AND (w.states IS NULL OR e.state = ANY (w.states))
   ORDER BY e.id, w.id
  ON CONFLICT (webhook_id, event_id) DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER events_webhooks AFTER INSERT ON events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_webhooks_enqueue();

CREATE OR REPLACE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval, p_per_webhook integer)
RETURNS TABLE (id bigint, webhook_id bigint, url text, secret text, event jsonb, attempts integer)
LANGUAGE sql AS $$
  UPDATE webhook_deliveries d SET locked_until = now() + p_lease
    FROM webhooks w
   WHERE w.id = d.webhook_id AND d.id IN (
     SELECT h.id FROM webhook_deliveries h WHERE h.id IN (
       SELECT c.id FROM webhooks e
       CROSS JOIN LATERAL (
         SELECT count(*)::integer AS n FROM webhook_deliveries l
          WHERE l.webhook_id = e.id AND l.status = 'pending' AND l.locked_until IS NOT NULL AND l.locked_until > now()
       ) leased
       CROSS JOIN LATERAL (
         SELECT x.id, x.next_attempt_at FROM webhook_deliveries x
          WHERE x.webhook_id = e.id AND x.status = 'pending' AND x.next_attempt_at <= now()
            AND (x.locked_until IS NULL OR x.locked_until <= now())
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o
                             WHERE o.webhook_id = x.webhook_id AND o.user_id = x.user_id
                               AND o.status = 'pending' AND o.event_id < x.event_id)
          ORDER BY x.next_attempt_at, x.id
          LIMIT greatest(p_per_webhook - leased.n, 0)
       ) c
       ORDER BY c.next_attempt_at, c.id
       LIMIT p_limit)
       AND h.status = 'pending' AND h.next_attempt_at <= now() AND (h.locked_until IS NULL OR h.locked_until <= now())
     FOR UPDATE SKIP LOCKED)
  RETURNING d.id, d.webhook_id, w.url, w.secret, d.event, d.attempts
$$;

CREATE OR REPLACE FUNCTION ck_webhook_finish(
  p_ids bigint[], p_attempts integer[], p_ok boolean[], p_codes integer[], p_errors text[], p_base_ms integer,
  p_cap interval DEFAULT '1 hour', p_max_age interval DEFAULT '24 hours'
) RETURNS float8 LANGUAGE sql AS $$
  WITH r AS (
    SELECT * FROM unnest(p_ids, p_attempts, p_ok, p_codes, p_errors) AS r(id, attempts, ok, code, err)
  ), b AS (
    SELECT r.*, least(make_interval(secs => p_base_ms * power(2, least(r.attempts, 30)) / 1000.0), p_cap) AS backoff
      FROM r
  ), done AS (
    UPDATE webhook_deliveries d
       SET attempts = d.attempts + 1, last_status = b.code, last_error = b.err, locked_until = NULL,
           status = CASE WHEN b.ok THEN 'delivered'
                         WHEN now() + b.backoff > d.created_at + p_max_age THEN 'failed'
                         ELSE 'pending' END,
           delivered_at = CASE WHEN b.ok THEN now() END,
           next_attempt_at = CASE WHEN b.ok THEN d.next_attempt_at ELSE now() + b.backoff END
      FROM b
     WHERE d.id = b.id AND d.attempts = b.attempts AND d.status = 'pending'
    RETURNING d.webhook_id, d.user_id, d.event_id, d.status, d.next_attempt_at
  ), queued AS (
    UPDATE webhook_deliveries q SET next_attempt_at = done.next_attempt_at
      FROM done
     WHERE done.status = 'pending' AND q.webhook_id = done.webhook_id AND q.user_id = done.user_id
       AND q.status = 'pending' AND q.event_id > done.event_id
  )
  SELECT min(ck_ms(done.next_attempt_at) - ck_ms(now())) FROM done WHERE done.status = 'pending'
$$;

-- The old id-based event reader: the log replaces it.
DROP FUNCTION ck_events(bigint[]);

-- Events are kept p_keep for Last-Event-ID replays, then deleted in bounded batches.
CREATE FUNCTION ck_prune_events(p_keep interval, p_limit integer DEFAULT 50000) RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < now() - p_keep ORDER BY e.created_at LIMIT p_limit)
    RETURNING 1)
  SELECT count(*)::integer FROM gone
$$;

-- The sweep leaves a user whose latest events a later transaction wrote (see ck_log_events) to its next
-- run, instead of failing as a whole.
CREATE OR REPLACE FUNCTION ck_sweep_offline(p_timeout interval, p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 100000)
RETURNS integer LANGUAGE sql AS $$
  WITH expired AS (
    SELECT s.ctid AS tid FROM user_sessions s
     WHERE s.current_state <> 'Offline' AND s.expiry_bucket < p_now - p_timeout
       AND ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, p_now, p_timeout) IS NOT NULL
       AND (s.event_xid IS NULL OR s.event_xid < pg_current_xact_id())
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

-- A batch of client checkpoints as rows: position, user, state, time, content, the round the row belongs
-- to (its place among the rows of its user) and whether its state is registered.
CREATE FUNCTION ck_batch_rows(p_users text[], p_states text[], p_ts timestamptz[], p_contents jsonb[])
RETURNS TABLE (ord integer, user_id text, state text, ts timestamptz, content jsonb, round integer, known boolean)
LANGUAGE sql STABLE AS $$
  SELECT i.ord::integer, i.u, i.s, i.t, i.c, (row_number() OVER (PARTITION BY i.u ORDER BY i.ord))::integer,
         EXISTS (SELECT 1 FROM state_types st WHERE st.name = i.s)
    FROM unnest(p_users, p_states, p_ts, p_contents) WITH ORDINALITY AS i(u, s, t, c, ord)
$$;

-- Client checkpoints in one set-based transaction (group commit, src/checkpoints/writer.ts). Rows of one
-- user are applied in their order, exactly as one at a time: round r takes each user's r-th row, so a
-- round holds a user at most once and is one statement. Each row's result comes back by its position
-- `ord`: `stored` (with the new row), `unchanged` (the user already was in that state at ts) or
-- `unknown_state` (nothing written for that row; the others are).
CREATE FUNCTION ck_record_checkpoints(
  p_users text[], p_states text[], p_ts timestamptz[], p_contents jsonb[], p_now timestamptz, p_timeout interval
) RETURNS TABLE (
  ord integer, status text, id bigint, state text, ts timestamptz, content jsonb, received_at timestamptz, previous_state text
) LANGUAGE plpgsql AS $$
DECLARE
  v_users text[];
  v_rounds integer;
BEGIN
  RETURN QUERY SELECT b.ord, 'unknown_state'::text, NULL::bigint, b.state, b.ts, b.content, p_now, NULL::text
    FROM ck_batch_rows(p_users, p_states, p_ts, p_contents) b WHERE NOT b.known;
  SELECT array_agg(DISTINCT b.user_id ORDER BY b.user_id), max(b.round) INTO v_users, v_rounds
    FROM ck_batch_rows(p_users, p_states, p_ts, p_contents) b WHERE b.known;
  IF v_users IS NULL THEN
    RETURN;
  END IF;

  -- Lock every user's session row in user_id order (a placeholder, never visible outside this
  -- transaction, for new users), so concurrent batches cannot deadlock.
  INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
  SELECT u, 'Offline', '-infinity', '-infinity' FROM unnest(v_users) AS u ORDER BY 1
  ON CONFLICT (user_id) DO NOTHING;
  PERFORM 1 FROM user_sessions s WHERE s.user_id = ANY (v_users) ORDER BY s.user_id FOR UPDATE;

  -- The Offline a missed sweep owes, before anything of this batch.
  INSERT INTO checkpoints (user_id, state, ts, source, received_at)
  SELECT x.user_id, 'Offline', x.at, 'timeout', p_now FROM (
    SELECT s.user_id, ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, p_now, p_timeout) AS at
      FROM user_sessions s WHERE s.user_id = ANY (v_users)) x
   WHERE x.at IS NOT NULL;

  FOR r IN 1..v_rounds LOOP
    -- Each row against the state in force at its ts: written only when it differs; a row it places before
    -- a later one of the same state makes that later one redundant (as ck_place_checkpoint does).
    RETURN QUERY
    WITH input AS (
      SELECT b.*, (SELECT c.state FROM checkpoints c WHERE c.user_id = b.user_id AND c.ts <= b.ts
                    ORDER BY c.ts DESC, c.id DESC LIMIT 1) AS prev
        FROM ck_batch_rows(p_users, p_states, p_ts, p_contents) b WHERE b.known AND b.round = r
    ), ins AS (
      INSERT INTO checkpoints (user_id, state, ts, content, source, received_at)
      SELECT i.user_id, i.state, i.ts, i.content, 'client', p_now FROM input i
       WHERE i.prev IS DISTINCT FROM i.state ORDER BY i.ord
      RETURNING checkpoints.id, checkpoints.user_id
    ), redundant AS (
      DELETE FROM checkpoints c USING input i, ins n
       WHERE n.user_id = i.user_id AND c.user_id = i.user_id AND c.state = i.state
         AND c.id = (SELECT c2.id FROM checkpoints c2 WHERE c2.user_id = i.user_id AND c2.ts > i.ts
                      ORDER BY c2.ts, c2.id LIMIT 1)
      RETURNING c.id
    )
    SELECT i.ord, CASE WHEN n.id IS NULL THEN 'unchanged' ELSE 'stored' END, n.id, i.state, i.ts, i.content, p_now,
           CASE WHEN n.id IS NULL THEN NULL ELSE i.prev END
      FROM input i LEFT JOIN ins n ON n.user_id = i.user_id, (SELECT count(*) FROM redundant) AS done;
  END LOOP;

  -- Sessions follow their latest checkpoint; a checkpoint is also a sign of life at its receipt.
  UPDATE user_sessions s
     SET current_state = l.state, state_since = l.ts,
         last_heartbeat = greatest(s.last_heartbeat, p_now), updated_at = now()
    FROM unnest(v_users) AS u(id)
    CROSS JOIN LATERAL (SELECT c.state, c.ts FROM checkpoints c WHERE c.user_id = u.id
                         ORDER BY c.ts DESC, c.id DESC LIMIT 1) l
   WHERE s.user_id = u.id;
END $$;

-- One writer of client checkpoints (ck_record_checkpoints): the one-at-a-time functions go.
DROP FUNCTION ck_record_checkpoint(text, text, timestamptz, jsonb, timestamptz, interval);
DROP FUNCTION ck_lock_session(text, timestamptz, interval);
DROP FUNCTION ck_place_checkpoint(text, text, timestamptz, jsonb, text, timestamptz);
DROP FUNCTION ck_sync_session(text, timestamptz);
