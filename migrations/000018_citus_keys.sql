-- Citus-ready keys (docs/scaling.md): every per-user table's primary and unique keys include user_id, so
-- each can be distributed by user_id and colocated. Ids stay unique by construction (one sequence hands
-- them out); plain indexes on id keep the few lookups by id alone (Last-Event-ID, webhook leases, pruning).

ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (user_id, id);

ALTER TABLE session_checkpoints DROP CONSTRAINT session_checkpoints_pkey;
ALTER TABLE session_checkpoints ADD CONSTRAINT session_checkpoints_pkey PRIMARY KEY (user_id, id);

ALTER TABLE manual_presence DROP CONSTRAINT manual_presence_pkey;
ALTER TABLE manual_presence ADD CONSTRAINT manual_presence_pkey PRIMARY KEY (user_id, id);

ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (user_id, id);
CREATE INDEX events_id ON events (id);

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_pkey;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (user_id, id);
CREATE INDEX webhook_deliveries_id ON webhook_deliveries (id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_event_id_key;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_user_webhook_event_key UNIQUE (user_id, webhook_id, event_id);

-- The enqueue trigger names the new unique key.
CREATE OR REPLACE FUNCTION ck_webhooks_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhooks) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_deliveries (webhook_id, event_id, user_id, event, next_attempt_at)
  SELECT w.id, e.id, e.user_id,
         jsonb_build_object('id', e.id::text, 'user_id', e.user_id, 'state', e.state,
                            'previous_state', e.previous_state, 'ts', ck_ms(e.ts), 'source', e.source,
                            'content', e.content, 'session_id', e.session_id),
         greatest(now(), (SELECT q.next_attempt_at FROM webhook_deliveries q
                           WHERE q.webhook_id = w.id AND q.user_id = e.user_id AND q.status = 'pending'
                           ORDER BY q.event_id LIMIT 1))
    FROM new_rows e
    JOIN webhooks w ON (w.user_ids IS NULL OR e.user_id = ANY (w.user_ids))
                   AND (w.states IS NULL OR e.state = ANY (w.states))
   WHERE e.type = 'state'
   ORDER BY e.id, w.id
  ON CONFLICT (user_id, webhook_id, event_id) DO NOTHING;
  RETURN NULL;
END $$;

-- Checks of a row by id now say whose row it is (the new keys serve them; on Citus they stay on one shard).
CREATE OR REPLACE FUNCTION ck_recompute(p_users text[], p_from timestamptz[], p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_changed bigint;
BEGIN
  WITH req AS (
    SELECT DISTINCT ON (r.u) r.u, r.f FROM unnest(p_users, p_from) AS r(u, f) WHERE r.f IS NOT NULL ORDER BY r.u, r.f
  ), rel AS (
    -- Sessions that can be alive at or after f: alive now, or with history from f on.
    SELECT req.u, s.session_id FROM req JOIN sessions s ON s.user_id = req.u
    UNION
    SELECT req.u, sc.session_id FROM req JOIN session_checkpoints sc ON sc.user_id = req.u AND sc.ts >= req.f
  ), inst AS (
    -- (f, 0): just before anything at f; then every change from f on.
    SELECT req.u, req.f AS at, 0::bigint AS seq FROM req
    UNION ALL SELECT req.u, sc.ts, sc.id FROM req JOIN session_checkpoints sc ON sc.user_id = req.u AND sc.ts >= req.f
    UNION ALL SELECT req.u, m.set_at, m.id FROM req JOIN manual_presence m ON m.user_id = req.u AND m.set_at >= req.f
    UNION ALL SELECT req.u, m.until, m.id FROM req JOIN manual_presence m
                ON m.user_id = req.u AND m.until >= req.f AND m.until < p_now AND m.state IS NOT NULL
  ), sess AS (
    SELECT i.u, i.at, i.seq, x.state, x.ts AS since, x.id
      FROM inst i JOIN rel ON rel.u = i.u
      CROSS JOIN LATERAL (SELECT sc.state, sc.ts, sc.id FROM session_checkpoints sc
                           WHERE sc.user_id = i.u AND sc.session_id = rel.session_id AND (sc.ts, sc.id) <= (i.at, i.seq)
                           ORDER BY sc.ts DESC, sc.id DESC LIMIT 1) x
     WHERE x.state <> 'Offline'
  ), man AS (
    SELECT i.u, i.at, i.seq, m.state
      FROM inst i CROSS JOIN LATERAL (SELECT m.state, m.until, m.id FROM manual_presence m
                                        WHERE m.user_id = i.u AND (m.set_at, m.id) <= (i.at, i.seq)
                                        ORDER BY m.set_at DESC, m.id DESC LIMIT 1) m
     WHERE m.state IS NOT NULL AND (m.until IS NULL OR (m.until, m.id) > (i.at, i.seq))
  ), fold AS (
    SELECT i.u, i.at, i.seq,
           ck_presence(array_agg(s.state ORDER BY s.since, s.id) FILTER (WHERE s.state IS NOT NULL),
                       array_agg(s.since ORDER BY s.since, s.id) FILTER (WHERE s.state IS NOT NULL),
                       max(m.state)) AS state
      FROM inst i
      LEFT JOIN sess s ON s.u = i.u AND s.at = i.at AND s.seq = i.seq
      LEFT JOIN man m ON m.u = i.u AND m.at = i.at AND m.seq = i.seq
     GROUP BY i.u, i.at, i.seq
  ), base AS (
    SELECT req.u, (SELECT c.state FROM checkpoints c WHERE c.user_id = req.u AND c.ts < req.f
                    ORDER BY c.ts DESC, c.id DESC LIMIT 1) AS state
      FROM req
  ), known AS (
    -- Just before anything at f, a user with no stored row yet is in no state at all.
    SELECT f.u, f.at, f.seq, CASE WHEN f.seq = 0 AND b.state IS NULL AND f.state = 'Offline' THEN NULL ELSE f.state END AS state
      FROM fold f JOIN base b ON b.u = f.u
  ), ordered AS (
    SELECT k.u, k.at, k.seq, k.state, lag(k.state) OVER (PARTITION BY k.u ORDER BY k.at, k.seq) AS prev FROM known k
  ), desired AS (
    -- A change (a user whose history starts Offline shows it only when a client said so).
    SELECT o.u, o.at, o.seq, o.state, sc.source, sc.session_id, sc.content, sc.id AS cause_id,
           row_number() OVER (PARTITION BY o.u ORDER BY o.at, o.seq) AS n
      FROM ordered o JOIN base b ON b.u = o.u
      LEFT JOIN session_checkpoints sc ON sc.id = o.seq AND sc.user_id = o.u
     WHERE o.state IS NOT NULL AND o.state IS DISTINCT FROM coalesce(o.prev, b.state)
       AND NOT (o.state = 'Offline' AND b.state IS NULL AND o.prev IS NULL AND sc.source IS DISTINCT FROM 'client')
  ), existing AS (
    SELECT c.id, c.user_id AS u, c.ts, c.state, row_number() OVER (PARTITION BY c.user_id ORDER BY c.ts, c.id) AS n
      FROM checkpoints c JOIN req ON c.user_id = req.u AND c.ts >= req.f
  ), first_diff AS (
    SELECT coalesce(d.u, e.u) AS u, min(coalesce(d.n, e.n)) AS n
      FROM desired d FULL JOIN existing e ON e.u = d.u AND e.n = d.n
     WHERE d.u IS NULL OR e.u IS NULL OR d.at <> e.ts OR d.state <> e.state
     GROUP BY coalesce(d.u, e.u)
  ), gone AS (
    DELETE FROM checkpoints c USING existing e JOIN first_diff k ON k.u = e.u
     WHERE c.user_id = e.u AND c.id = e.id AND e.n >= k.n
    RETURNING c.id
  ), kept AS (
    SELECT e.u, e.ts, max(e.id) AS max_id FROM existing e JOIN first_diff k ON k.u = e.u WHERE e.n < k.n GROUP BY e.u, e.ts
  ), fresh AS (
    -- Rows to insert. One caused by a client's session checkpoint takes that checkpoint's id when it is
    -- alone at its instant and that id orders it after every row kept there (ids order rows at one instant).
    SELECT d.*, coalesce(d.source = 'client' AND count(*) OVER (PARTITION BY d.u, d.at) = 1
                 AND d.cause_id > coalesce(kp.max_id, 0)
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = d.u AND e.id = d.cause_id)
                 AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.user_id = d.u AND c.id = d.cause_id), false) AS reuse
      FROM desired d JOIN first_diff k ON k.u = d.u
      LEFT JOIN kept kp ON kp.u = d.u AND kp.ts = d.at
     WHERE d.n >= k.n
  ), added AS (
    INSERT INTO checkpoints (id, user_id, state, ts, content, source, session_id, received_at) OVERRIDING SYSTEM VALUE
    SELECT f.cause_id, f.u, f.state, f.at, f.content, f.source, f.session_id, p_now FROM fresh f WHERE f.reuse
     ORDER BY f.at, f.seq
    RETURNING 1
  ), added_new AS (
    INSERT INTO checkpoints (user_id, state, ts, content, source, session_id, received_at)
    SELECT f.u, f.state, f.at, f.content,
           CASE WHEN f.source IS NULL THEN CASE WHEN f.seq = 0 THEN 'client' ELSE 'manual' END ELSE f.source END,
           CASE WHEN f.source IN ('timeout', 'idle') THEN NULL ELSE f.session_id END, p_now
      FROM fresh f WHERE NOT f.reuse
     ORDER BY f.at, f.seq
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM added) + (SELECT count(*) FROM added_new) INTO v_changed;

  -- The user row follows the timeline's latest row (a user with none yet stays as created).
  UPDATE user_sessions s SET current_state = l.state, state_since = l.ts, updated_at = now()
    FROM unnest(p_users) AS u(id)
    CROSS JOIN LATERAL (SELECT c.state, c.ts FROM checkpoints c WHERE c.user_id = u.id
                         ORDER BY c.ts DESC, c.id DESC LIMIT 1) l
   WHERE s.user_id = u.id AND (s.current_state, s.state_since) IS DISTINCT FROM (l.state, l.ts);
END $$;
