-- Users' data rights (docs/data-rights.md): per-user tokens are recorded so they can be listed and
-- revoked, and a user can be erased from every table that holds a user_id.

-- Per-user tokens as issued (POST /tokens): the grant, which is data about the user.
CREATE TABLE tokens (
  user_id    text NOT NULL,
  jti        text NOT NULL,
  scopes     text[] NOT NULL,
  issued_at  timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, jti)
);
CREATE INDEX tokens_jti ON tokens (jti);
CREATE INDEX tokens_expires ON tokens (expires_at);

-- Revoked tokens, by id only (no user: a revocation outlives the erasure of its user). Every instance
-- polls this table and refuses the token within a second; a row is kept until the token would have
-- expired anyway.
CREATE TABLE token_revocations (
  jti        text PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_revocations_revoked ON token_revocations (revoked_at);

-- Erasures, by a hash of the user id and only for a day: a heartbeat an instance acknowledged before the
-- erasure and flushes after it must not bring the user back. (Nothing else is kept about an erased user.)
CREATE TABLE user_erasures (
  user_hash bytea PRIMARY KEY,
  erased_at timestamptz NOT NULL
);

CREATE FUNCTION ck_user_hash(p_user text) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(convert_to(p_user, 'UTF8'))
$$;

-- Revokes a token now; false when no such token was issued or it has expired.
CREATE FUNCTION ck_revoke_token(p_jti text) RETURNS boolean LANGUAGE sql AS $$
  WITH t AS (SELECT t.jti, t.expires_at FROM tokens t WHERE t.jti = p_jti AND t.expires_at > now() LIMIT 1),
  ins AS (INSERT INTO token_revocations (jti, expires_at) SELECT t.jti, t.expires_at FROM t ON CONFLICT (jti) DO NOTHING)
  SELECT EXISTS (SELECT 1 FROM t)
$$;

-- Erases a user: every row of every table in this schema with a user_id column, found in the catalog so
-- a table added later cannot be forgotten, in one transaction; their unexpired tokens are revoked and
-- their id leaves webhook filters. Writes no event. Deletions can fire triggers that write about the user
-- again (summary invalidation), so the tables are passed over until one pass finds nothing.
-- False when ck holds nothing about the user.
CREATE FUNCTION ck_erase_user(p_user text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_table text;
  v_n bigint;
  v_total bigint := 0;
  v_pass bigint;
BEGIN
  -- Writers of this user wait for the erasure (their lock is the user row), then start a new user.
  PERFORM 1 FROM user_sessions WHERE user_id = p_user FOR UPDATE;
  INSERT INTO token_revocations (jti, expires_at)
  SELECT t.jti, t.expires_at FROM tokens t WHERE t.user_id = p_user AND t.expires_at > now()
  ON CONFLICT (jti) DO NOTHING;
  LOOP
    v_pass := 0;
    FOR v_table IN
      SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
         AND a.attname = 'user_id' AND NOT a.attisdropped
       ORDER BY c.relname
    LOOP
      EXECUTE format('DELETE FROM %I WHERE user_id = $1', v_table) USING p_user;
      GET DIAGNOSTICS v_n = ROW_COUNT;
      v_pass := v_pass + v_n;
    END LOOP;
    v_total := v_total + v_pass;
    EXIT WHEN v_pass = 0;
  END LOOP;
  UPDATE webhooks SET user_ids = array_remove(user_ids, p_user) WHERE p_user = ANY (user_ids);
  IF v_total > 0 THEN
    INSERT INTO user_erasures (user_hash, erased_at) VALUES (ck_user_hash(p_user), now())
    ON CONFLICT (user_hash) DO UPDATE SET erased_at = excluded.erased_at;
  END IF;
  RETURN v_total > 0;
END $$;

-- Heartbeats: those older than their user's erasure are dropped (acknowledged from memory before it,
-- flushed after it). The writer itself is 000015's, renamed.
ALTER FUNCTION ck_session_heartbeat(text[], text[], timestamptz[], boolean[], text[], interval, interval)
  RENAME TO ck_session_heartbeat_write;

CREATE FUNCTION ck_session_heartbeat(
  p_users text[], p_sessions text[], p_ts timestamptz[], p_active boolean[], p_clients text[],
  p_timeout interval, p_idle interval
) RETURNS TABLE (
  user_id text, session_id text, state text, state_since timestamptz, last_heartbeat timestamptz, valid_until timestamptz,
  session_state text, session_heartbeat timestamptz, session_active timestamptz
) LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM user_erasures) THEN
    SELECT array_agg(i.u ORDER BY i.n), array_agg(i.s ORDER BY i.n), array_agg(i.t ORDER BY i.n),
           array_agg(i.a ORDER BY i.n), array_agg(i.c ORDER BY i.n)
      INTO p_users, p_sessions, p_ts, p_active, p_clients
      FROM unnest(p_users, p_sessions, p_ts, p_active, p_clients) WITH ORDINALITY AS i(u, s, t, a, c, n)
     WHERE NOT EXISTS (SELECT 1 FROM user_erasures e WHERE e.user_hash = ck_user_hash(i.u) AND e.erased_at > i.t);
    IF p_users IS NULL THEN
      RETURN;
    END IF;
  END IF;
  RETURN QUERY SELECT * FROM ck_session_heartbeat_write(p_users, p_sessions, p_ts, p_active, p_clients, p_timeout, p_idle);
END $$;

-- Token grants and revocations past their tokens' expiry, and erasure markers older than a day.
CREATE FUNCTION ck_prune_tokens(p_limit integer DEFAULT 50000) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_a integer;
  v_b integer;
  v_c integer;
BEGIN
  DELETE FROM tokens WHERE (user_id, jti) IN (SELECT t.user_id, t.jti FROM tokens t WHERE t.expires_at < now() LIMIT p_limit);
  GET DIAGNOSTICS v_a = ROW_COUNT;
  DELETE FROM token_revocations WHERE jti IN (SELECT r.jti FROM token_revocations r WHERE r.expires_at < now() LIMIT p_limit);
  GET DIAGNOSTICS v_b = ROW_COUNT;
  DELETE FROM user_erasures WHERE erased_at < now() - interval '1 day';
  GET DIAGNOSTICS v_c = ROW_COUNT;
  RETURN v_a + v_b + v_c;
END $$;
