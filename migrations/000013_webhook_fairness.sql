-- Webhook fairness: one endpoint's slowness never holds another's deliveries. A claim takes at most
-- p_per_webhook deliveries in flight per endpoint, counted across every instance (leases not yet run out),
-- so a receiver that hangs ties up its own share and nothing else.

-- Each endpoint's due deliveries, soonest first.
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, next_attempt_at, id) WHERE status = 'pending';
-- Deliveries under lease (in flight, or leased by an instance that died): few at any time.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id) WHERE status = 'pending' AND locked_until IS NOT NULL;

DROP FUNCTION ck_webhook_claim(integer, interval);

-- Leases up to p_limit due deliveries, each the oldest pending one of its (webhook, user): a user's
-- events go out one at a time, in order. Per endpoint, no more than p_per_webhook are leased at once.
-- SKIP LOCKED lets any number of instances claim concurrently.
CREATE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval, p_per_webhook integer)
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
                               AND o.status = 'pending' AND o.checkpoint_id < x.checkpoint_id)
          ORDER BY x.next_attempt_at, x.id
          LIMIT greatest(p_per_webhook - leased.n, 0)
       ) c
       ORDER BY c.next_attempt_at, c.id
       LIMIT p_limit)
       -- Re-checked on the row it locks: a candidate another instance claimed and committed meanwhile
       -- fails these and is not claimed twice.
       AND h.status = 'pending' AND h.next_attempt_at <= now() AND (h.locked_until IS NULL OR h.locked_until <= now())
     FOR UPDATE SKIP LOCKED)
  RETURNING d.id, d.webhook_id, w.url, w.secret, d.event, d.attempts
$$;
