-- Standard Webhooks (docs/webhooks.md): secrets are `whsec_` + standard base64 and the HMAC key is the
-- decoded bytes; key rotation keeps the previous secret for an overlap; a receiver's 410 Gone disables
-- its endpoint until an admin enables it again; retries get jitter.

-- Secrets were `whsec_` + unpadded base64url. Re-encode them as standard base64 of the same bytes, so
-- a receiver that converts its copy (tr '_-' '/+', pad with '=') verifies with the key it already has.
UPDATE webhooks
   SET secret = 'whsec_' || replace(encode(decode(
         rpad(translate(substr(secret, 7), '-_', '+/'), (length(secret) - 6 + 3) / 4 * 4, '='), 'base64'), 'base64'), E'\n', '')
 WHERE secret ~ '^whsec_[A-Za-z0-9_-]+$';

ALTER TABLE webhooks
  -- The secret replaced by the last rotation; deliveries are signed with it too until it expires.
  ADD COLUMN previous_secret text,
  ADD COLUMN previous_secret_expires_at timestamptz,
  -- Set when the receiver answered 410 Gone: nothing is queued or sent until POST /webhooks/:id/enable.
  ADD COLUMN disabled_at timestamptz,
  ADD COLUMN disabled_reason text,
  ADD CONSTRAINT webhooks_disabled_reason CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL));

-- A disabled endpoint gets no deliveries queued (its backlog does not grow while it is gone). From
-- 000018_citus_keys, the latest definition before this one.
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
                   AND w.disabled_at IS NULL
   WHERE e.type = 'state'
   ORDER BY e.id, w.id
  ON CONFLICT (user_id, webhook_id, event_id) DO NOTHING;
  RETURN NULL;
END $$;

-- The secrets a delivery is signed with now: the current one, and the previous one during its overlap.
-- One owner for "is the old secret still valid", used by the sender and by POST /webhooks/:id/test.
CREATE FUNCTION ck_webhook_secrets(w webhooks) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN w.previous_secret_expires_at > now() THEN ARRAY[w.secret, w.previous_secret]
              ELSE ARRAY[w.secret] END
$$;

-- Rotation: the current secret becomes the previous one for p_overlap; a rotation inside an overlap
-- drops the oldest secret. Returns the new secret and when the previous one stops signing (no row: no
-- such webhook).
CREATE FUNCTION ck_webhook_rotate(p_id bigint, p_secret text, p_overlap interval)
RETURNS TABLE (secret text, previous_secret_expires_at timestamptz) LANGUAGE sql AS $$
  UPDATE webhooks w SET previous_secret = w.secret, previous_secret_expires_at = now() + p_overlap, secret = p_secret
   WHERE w.id = p_id
  RETURNING w.secret, w.previous_secret_expires_at
$$;

DROP FUNCTION ck_webhook_claim(integer, interval, integer);

-- Leases up to p_limit due deliveries, each the oldest pending one of its (webhook, user): a user's
-- events go out one at a time, in order. Per endpoint, no more than p_per_webhook are leased at once;
-- disabled endpoints get none. SKIP LOCKED lets any number of instances claim concurrently.
CREATE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval, p_per_webhook integer)
RETURNS TABLE (id bigint, webhook_id bigint, url text, secrets text[], event jsonb, attempts integer)
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
       WHERE e.disabled_at IS NULL
       ORDER BY c.next_attempt_at, c.id
       LIMIT p_limit)
       AND h.status = 'pending' AND h.next_attempt_at <= now() AND (h.locked_until IS NULL OR h.locked_until <= now())
     FOR UPDATE SKIP LOCKED)
  RETURNING d.id, d.webhook_id, w.url, ck_webhook_secrets(w), d.event, d.attempts
$$;

-- Records attempts in one statement. p_attempts is the count each lease was claimed with: a result that
-- arrives after its lease passed and someone else recorded the attempt changes nothing. Failures retry
-- after p_base_ms * 2^(attempts - 1), capped at p_cap, times a random factor in [0.5, 1) (jitter: many
-- deliveries failing together do not retry together), until p_max_age after the event; then 'failed'.
-- A 410 Gone fails the delivery and disables its endpoint; its other pending deliveries wait, unsent,
-- until it is enabled. The events queued behind a retrying one move their retry time with it.
-- Returns the milliseconds until the soonest retry it scheduled (NULL: none), so the worker can wake then.
CREATE OR REPLACE FUNCTION ck_webhook_finish(
  p_ids bigint[], p_attempts integer[], p_ok boolean[], p_codes integer[], p_errors text[], p_base_ms integer,
  p_cap interval DEFAULT '1 hour', p_max_age interval DEFAULT '24 hours'
) RETURNS float8 LANGUAGE sql AS $$
  WITH r AS (
    SELECT * FROM unnest(p_ids, p_attempts, p_ok, p_codes, p_errors) AS r(id, attempts, ok, code, err)
  ), b AS (
    SELECT r.*, least(make_interval(secs => p_base_ms * power(2, least(r.attempts, 30)) / 1000.0), p_cap)
                * (0.5 + random() / 2) AS backoff
      FROM r
  ), done AS (
    UPDATE webhook_deliveries d
       SET attempts = d.attempts + 1, last_status = b.code, last_error = b.err, locked_until = NULL,
           status = CASE WHEN b.ok THEN 'delivered'
                         WHEN b.code = 410 OR now() + b.backoff > d.created_at + p_max_age THEN 'failed'
                         ELSE 'pending' END,
           delivered_at = CASE WHEN b.ok THEN now() END,
           next_attempt_at = CASE WHEN b.ok THEN d.next_attempt_at ELSE now() + b.backoff END
      FROM b
     WHERE d.id = b.id AND d.attempts = b.attempts AND d.status = 'pending'
    RETURNING d.webhook_id, d.user_id, d.event_id, d.status, d.next_attempt_at, b.code
  ), queued AS (
    UPDATE webhook_deliveries q SET next_attempt_at = done.next_attempt_at
      FROM done
     WHERE done.status = 'pending' AND q.webhook_id = done.webhook_id AND q.user_id = done.user_id
       AND q.status = 'pending' AND q.event_id > done.event_id
  ), gone AS (
    UPDATE webhooks w SET disabled_at = now(), disabled_reason = 'the receiver answered 410 Gone'
     WHERE w.disabled_at IS NULL AND w.id IN (SELECT done.webhook_id FROM done WHERE done.code = 410)
  )
  SELECT min(ck_ms(done.next_attempt_at) - ck_ms(now())) FROM done WHERE done.status = 'pending'
$$;
