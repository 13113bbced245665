-- The flush's common case in one lean UPDATE: users already alive only move last_heartbeat forward.
-- No up-front INSERT or FOR UPDATE pass (each wrote every row a second time): about half the cost of
-- ck_heartbeat per row. Under READ COMMITTED the WHERE is rechecked against a row another writer
-- changed meanwhile, so a user the sweep just marked Offline is skipped, never silently revived.
-- Users it skips (unknown, Offline, or silent past the timeout) are the caller's to send through
-- ck_heartbeat, which writes their state changes. Times are epoch milliseconds.
CREATE FUNCTION ck_heartbeat_alive(p_users text[], p_ms bigint[], p_timeout interval)
RETURNS TABLE (user_id text, state text, state_since float8, last_heartbeat float8)
LANGUAGE sql AS $$
  WITH i AS (
    SELECT x.u, max(to_timestamp(x.ms::float8 / 1000)) AS hb FROM unnest(p_users, p_ms) AS x(u, ms)
     GROUP BY x.u ORDER BY x.u
  )
  UPDATE user_sessions s
     SET last_heartbeat = greatest(s.last_heartbeat, i.hb), updated_at = now()
    FROM i
   WHERE s.user_id = i.u AND s.current_state <> 'Offline' AND s.last_heartbeat + p_timeout >= i.hb
  RETURNING s.user_id, s.current_state, ck_ms(s.state_since), ck_ms(s.last_heartbeat)
$$;
