-- Webhooks: registered endpoints and a transactional outbox of deliveries (docs/webhooks.md).

CREATE TABLE webhooks (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  url        text NOT NULL CHECK (url ~ '^https?://'),
  -- NULL filters match everything.
  user_ids   text[],
  states     text[],
  -- HMAC-SHA256 key; needed in clear text to sign, so it is shown to the admin once and never listed.
  secret     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (webhook, event): written in the same transaction as the checkpoint, so a crash or restart
-- loses none. The event is snapshotted: it is delivered even if retention later deletes the checkpoint.
CREATE TABLE webhook_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_id      bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  checkpoint_id   bigint NOT NULL,
  user_id         text NOT NULL,
  -- {id, user_id, state, previous_state, ts (epoch ms), source, content}
  event           jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- A worker's lease while it sends; an instance that dies mid-send hands the row over when it passes.
  locked_until    timestamptz,
  last_status     integer,
  last_error      text,
  delivered_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, checkpoint_id)
);
-- Claiming: due rows, soonest first; and "is there an older pending event of this webhook and user".
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, user_id, checkpoint_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- Enqueues one delivery per matching (webhook, event) in one set-based statement per inserted batch.
-- An event queued behind a retrying one inherits its retry time, so the claim query does not rescan a
-- long backlog that cannot be sent yet (order is enforced by ck_webhook_claim either way).
CREATE FUNCTION ck_webhooks_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhooks) THEN
    RETURN NULL;
  END IF;
  INSERT INTO webhook_deliveries (webhook_id, checkpoint_id, user_id, event, next_attempt_at)
  SELECT w.id, e.id, e.user_id,
         jsonb_build_object('id', e.id::text, 'user_id', e.user_id, 'state', e.state,
                            'previous_state', e.previous_state, 'ts', ck_ms(e.ts), 'source', e.source,
                            'content', e.content),
         greatest(now(), (SELECT q.next_attempt_at FROM webhook_deliveries q
                           WHERE q.webhook_id = w.id AND q.user_id = e.user_id AND q.status = 'pending'
                           ORDER BY q.checkpoint_id LIMIT 1))
    FROM ck_events(ARRAY(
           SELECT n.id FROM new_rows n
            WHERE EXISTS (SELECT 1 FROM webhooks w
                           WHERE (w.user_ids IS NULL OR n.user_id = ANY (w.user_ids))
                             AND (w.states IS NULL OR n.state = ANY (w.states))))) e
    JOIN webhooks w ON (w.user_ids IS NULL OR e.user_id = ANY (w.user_ids))
                   AND (w.states IS NULL OR e.state = ANY (w.states))
   ORDER BY e.id, w.id
  ON CONFLICT (webhook_id, checkpoint_id) DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER checkpoints_webhooks AFTER INSERT ON checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_webhooks_enqueue();

-- Leases up to p_limit due deliveries, each the oldest pending one of its (webhook, user): a user's
-- events go out one at a time, in order. SKIP LOCKED lets any number of instances claim concurrently.
CREATE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval)
RETURNS TABLE (id bigint, webhook_id bigint, url text, secret text, event jsonb, attempts integer)
LANGUAGE sql AS $$
  UPDATE webhook_deliveries d SET locked_until = now() + p_lease
    FROM webhooks w
   WHERE w.id = d.webhook_id AND d.id IN (
     SELECT h.id FROM webhook_deliveries h
      WHERE h.status = 'pending' AND h.next_attempt_at <= now()
        AND (h.locked_until IS NULL OR h.locked_until <= now())
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o
                         WHERE o.webhook_id = h.webhook_id AND o.user_id = h.user_id
                           AND o.status = 'pending' AND o.checkpoint_id < h.checkpoint_id)
      ORDER BY h.next_attempt_at, h.id
      LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
  RETURNING d.id, d.webhook_id, w.url, w.secret, d.event, d.attempts
$$;

-- Records attempts in one statement. p_attempts is the count each lease was claimed with: a result that
-- arrives after its lease passed and someone else recorded the attempt changes nothing. Failures retry
-- after p_base_ms * 2^(attempts - 1), capped at p_cap, until p_max_age after the event; then 'failed'.
-- The events queued behind a retrying one move their retry time with it (see ck_webhooks_enqueue).
-- Returns the milliseconds until the soonest retry it scheduled (NULL: none), so the worker can wake then.
CREATE FUNCTION ck_webhook_finish(
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
    RETURNING d.webhook_id, d.user_id, d.checkpoint_id, d.status, d.next_attempt_at
  ), queued AS (
    UPDATE webhook_deliveries q SET next_attempt_at = done.next_attempt_at
      FROM done
     WHERE done.status = 'pending' AND q.webhook_id = done.webhook_id AND q.user_id = done.user_id
       AND q.status = 'pending' AND q.checkpoint_id > done.checkpoint_id
  )
  SELECT min(ck_ms(done.next_attempt_at) - ck_ms(now())) FROM done WHERE done.status = 'pending'
$$;
