-- One user, many devices (docs/presence-model.md). Each device or tab is a session with its own state and
-- liveness; a user may set a manual presence with an expiry; sessions that stop being active decay to
-- Away. The user's timeline (checkpoints) stays what the API reports: the fold of these, written only
-- when it changes, recomputed from the instant of any change (back-fills included).

-- Precedence between sessions' states.
ALTER TABLE state_types ADD COLUMN priority integer NOT NULL DEFAULT 30;
UPDATE state_types t SET priority = v.p
  FROM (VALUES ('DoNotDisturb', 50), ('Busy', 40), ('Online', 30), ('Away', 20), ('Offline', 0)) AS v(n, p)
 WHERE t.name = v.n AND t.builtin;

-- Alive sessions: a row exists from a session's first heartbeat or checkpoint until it ends or expires.
CREATE TABLE sessions (
  user_id        text NOT NULL,
  session_id     text NOT NULL,
  state          text NOT NULL CHECK (state <> 'Offline'),
  state_since    timestamptz NOT NULL,
  last_heartbeat timestamptz NOT NULL,
  -- The newest heartbeat or checkpoint with active = true (idle decay counts from it).
  last_active    timestamptz NOT NULL,
  client         text,
  started_at     timestamptz NOT NULL,
  -- 10-second buckets for the sweep's indexes: a heartbeat flush rarely moves them (HOT updates, 000008).
  expiry_bucket  timestamptz GENERATED ALWAYS AS (date_bin('10 seconds', last_heartbeat, timestamptz 'epoch')) STORED,
  idle_bucket    timestamptz GENERATED ALWAYS AS (date_bin('10 seconds', last_active, timestamptz 'epoch')) STORED,
  PRIMARY KEY (user_id, session_id)
) WITH (fillfactor = 50);
CREATE INDEX sessions_expiry ON sessions (expiry_bucket);
CREATE INDEX sessions_idle ON sessions (idle_bucket) WHERE state = 'Online';

-- Each session's own state changes (state-change-only per session), Offline when it ended or expired.
-- Ids come from the checkpoints' sequence: a session event and a user event never share an id.
CREATE TABLE session_checkpoints (
  id          bigint PRIMARY KEY DEFAULT nextval(pg_get_serial_sequence('checkpoints', 'id')),
  user_id     text NOT NULL,
  session_id  text NOT NULL,
  state       text NOT NULL,
  ts          timestamptz NOT NULL,
  content     jsonb,
  source      text NOT NULL CHECK (source IN ('client', 'heartbeat', 'timeout', 'idle', 'session_end')),
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_checkpoints_session ON session_checkpoints (user_id, session_id, ts, id);
CREATE INDEX session_checkpoints_user_ts ON session_checkpoints (user_id, ts);
CREATE INDEX session_checkpoints_ts ON session_checkpoints (ts, id);

CREATE TRIGGER session_checkpoints_state_check AFTER INSERT ON session_checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_check_checkpoint_states();

-- Manual presence, every set and clear (state NULL); the one in force is the user's latest.
CREATE TABLE manual_presence (
  id      bigint PRIMARY KEY DEFAULT nextval(pg_get_serial_sequence('checkpoints', 'id')),
  user_id text NOT NULL,
  state   text,
  set_at  timestamptz NOT NULL,
  until   timestamptz
);
CREATE INDEX manual_presence_user ON manual_presence (user_id, set_at, id);

-- The user row: the fold's current result (current_state, state_since), the lock every writer of the user
-- takes, and the manual presence in force until it expires (the sweep applies expiries at `until`).
ALTER TABLE user_sessions ADD COLUMN manual_state text, ADD COLUMN manual_until timestamptz;
CREATE INDEX user_sessions_manual_due ON user_sessions (manual_until) WHERE manual_until IS NOT NULL;
DROP INDEX user_sessions_expiry;
ALTER TABLE user_sessions DROP COLUMN expiry_bucket;

-- The user timeline says which session caused each change, and more kinds of cause.
ALTER TABLE checkpoints ADD COLUMN session_id text;
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_source_check;
ALTER TABLE checkpoints ADD CONSTRAINT checkpoints_source_check
  CHECK (source IN ('client', 'heartbeat', 'timeout', 'idle', 'manual', 'session_end'));

-- Events: user state changes (type 'state') and, for clients that ask, session changes ('session').
ALTER TABLE events ADD COLUMN type text NOT NULL DEFAULT 'state' CHECK (type IN ('state', 'session')),
  ADD COLUMN session_id text;

-- Existing users: what they did so far was one session, "default".
INSERT INTO session_checkpoints (user_id, session_id, state, ts, content, source, received_at)
SELECT c.user_id, 'default', c.state, c.ts, c.content, c.source, c.received_at FROM checkpoints c ORDER BY c.id;
INSERT INTO sessions (user_id, session_id, state, state_since, last_heartbeat, last_active, started_at)
SELECT s.user_id, 'default', s.current_state, s.state_since, s.last_heartbeat, s.last_heartbeat, s.state_since
  FROM user_sessions s WHERE s.current_state <> 'Offline' AND s.state_since > '-infinity';

-- The event log takes both tables; a user's events stay in change order (ck_log_events, 000014).
CREATE OR REPLACE FUNCTION ck_log_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM user_sessions s
              WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid > pg_current_xact_id()) THEN
    RAISE EXCEPTION 'a later transaction wrote events of the same user first; retry'
      USING ERRCODE = 'serialization_failure';
  END IF;
  UPDATE user_sessions s SET event_xid = pg_current_xact_id()
   WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid IS DISTINCT FROM pg_current_xact_id();
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

CREATE TRIGGER session_checkpoints_events AFTER INSERT ON session_checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_log_events();

-- Webhooks announce user state changes only.
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
  ON CONFLICT (webhook_id, event_id) DO NOTHING;
  RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------------------------------
-- The rules, each in one function.

-- A session's liveness and idle decay: the instants its state changes by itself (NULL when it does not).
-- It expires at last_heartbeat + timeout; an Online session whose last activity is older than the idle
-- timeout (0: off) is Away from last_active + idle, if that comes before it expires.
CREATE FUNCTION ck_session_expiry(p_last_heartbeat timestamptz, p_timeout interval) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT p_last_heartbeat + p_timeout $$;

CREATE FUNCTION ck_session_idle(p_state text, p_last_heartbeat timestamptz, p_last_active timestamptz, p_timeout interval, p_idle interval)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_state = 'Online' AND p_idle > interval '0' AND p_last_active + p_idle < p_last_heartbeat + p_timeout
              THEN p_last_active + p_idle END
$$;

-- A session's state at p_at from its row (NULL: no longer alive), and since when.
CREATE FUNCTION ck_session_at(
  p_state text, p_since timestamptz, p_last_heartbeat timestamptz, p_last_active timestamptz,
  p_at timestamptz, p_timeout interval, p_idle interval, OUT state text, OUT since timestamptz
) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN ck_session_expiry(p_last_heartbeat, p_timeout) <= p_at THEN NULL
              WHEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle) <= p_at THEN 'Away'
              ELSE p_state END,
         CASE WHEN ck_session_expiry(p_last_heartbeat, p_timeout) <= p_at THEN NULL
              WHEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle) <= p_at
                THEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle)
              ELSE p_since END
$$;

-- The user's state from the states of their alive sessions (with when each last changed) and the manual
-- presence in force: 1. the manual presence, if a session is alive; 2. else the highest-priority state
-- among alive sessions, on a tie the session that changed most recently; 3. else Offline.
CREATE FUNCTION ck_presence(p_states text[], p_since timestamptz[], p_manual text) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN coalesce(cardinality(p_states), 0) = 0 THEN 'Offline'
              WHEN p_manual IS NOT NULL THEN p_manual
              ELSE (SELECT s.state FROM unnest(p_states, p_since) WITH ORDINALITY AS s(state, since, n)
                      LEFT JOIN state_types t ON t.name = s.state
                     ORDER BY coalesce(t.priority, 30) DESC, s.since DESC, s.n DESC LIMIT 1) END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Recomputing the user timeline: for each user from p_from[i], the fold of rules 1-3 over the session
-- histories and manual presence after every change, in the order the changes were written (time, then
-- the shared id sequence, so several changes at one instant keep their order). Written where it differs
-- from what is stored: stored rows up to the first difference stay (no event is repeated), the rest is
-- replaced. A row caused by a client's session checkpoint takes that checkpoint's id, so the id the
-- client was answered with is the id of the user's change and of its event.
CREATE FUNCTION ck_recompute(p_users text[], p_from timestamptz[], p_now timestamptz) RETURNS void
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
     WHERE c.id = e.id AND e.n >= k.n
    RETURNING c.id
  ), kept AS (
    SELECT e.u, e.ts, max(e.id) AS max_id FROM existing e JOIN first_diff k ON k.u = e.u WHERE e.n < k.n GROUP BY e.u, e.ts
  ), fresh AS (
    -- Rows to insert. One caused by a client's session checkpoint takes that checkpoint's id when it is
    -- alone at its instant and that id orders it after every row kept there (ids order rows at one instant).
    SELECT d.*, coalesce(d.source = 'client' AND count(*) OVER (PARTITION BY d.u, d.at) = 1
                 AND d.cause_id > coalesce(kp.max_id, 0)
                 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.cause_id)
                 AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.id = d.cause_id), false) AS reuse
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

-- ---------------------------------------------------------------------------------------------------
-- Settling: the session transitions and manual expiries due by p_now for these users (whose rows the
-- caller has locked), written at the instants they happened: Away at last_active + idle, Offline at
-- last_heartbeat + timeout, the manual presence's end at `until`. Returns each user's earliest instant
-- written, for the recompute that follows.
CREATE FUNCTION ck_settle(p_users text[], p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (user_id text, at timestamptz) LANGUAGE plpgsql AS $$
BEGIN
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

  RETURN QUERY
  WITH gone AS (
    DELETE FROM sessions s WHERE s.user_id = ANY (p_users) AND ck_session_expiry(s.last_heartbeat, p_timeout) < p_now
    RETURNING s.user_id, s.session_id, s.last_heartbeat, ck_session_expiry(s.last_heartbeat, p_timeout) AS at
  ), logged AS (
    INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
    SELECT g.user_id, g.session_id, 'Offline', g.at, 'timeout', p_now FROM gone g ORDER BY g.at
    RETURNING 1
  ), seen AS (
    UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, x.hb)
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

-- Locks users' rows in user_id order (creating rows for new users: Offline, as of p_now), so concurrent
-- writers never deadlock, then settles what was due. Returns each user's earliest settled instant.
CREATE FUNCTION ck_lock_users(p_users text[], p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (user_id text, at timestamptz) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
  SELECT DISTINCT u, 'Offline', p_now, p_now FROM unnest(p_users) AS u ORDER BY 1
  ON CONFLICT ON CONSTRAINT user_sessions_pkey DO NOTHING;
  PERFORM 1 FROM user_sessions s WHERE s.user_id = ANY (p_users) ORDER BY s.user_id FOR UPDATE;
  RETURN QUERY SELECT x.user_id, min(x.at) FROM ck_settle(p_users, p_now, p_timeout, p_idle) x GROUP BY x.user_id;
END $$;

-- The sweep: every session whose idle decay or expiry is due, and every manual presence past `until`,
-- written at the instant it happened however late the sweep runs; then those users' timelines. Users a
-- writer holds are skipped (the writer settles them), and so are users whose latest events a later
-- transaction wrote (ck_log_events). Returns how many users it settled.
DROP FUNCTION ck_sweep_offline(interval, timestamptz, integer);
CREATE FUNCTION ck_sweep_offline(
  p_timeout interval, p_now timestamptz DEFAULT now(), p_limit integer DEFAULT 100000, p_idle interval DEFAULT '0'
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_users text[];
  v_at timestamptz[];
BEGIN
  WITH candidates AS (
    SELECT s.user_id FROM sessions s
     WHERE s.expiry_bucket <= p_now - p_timeout AND ck_session_expiry(s.last_heartbeat, p_timeout) < p_now
    UNION
    SELECT s.user_id FROM sessions s
     WHERE p_idle > interval '0' AND s.state = 'Online' AND s.idle_bucket <= p_now - p_idle
       AND ck_session_idle(s.state, s.last_heartbeat, s.last_active, p_timeout, p_idle) < p_now
    UNION
    SELECT u.user_id FROM user_sessions u WHERE u.manual_until < p_now
  ), locked AS (
    SELECT u.user_id FROM user_sessions u
     WHERE u.user_id IN (SELECT c.user_id FROM candidates c) AND (u.event_xid IS NULL OR u.event_xid < pg_current_xact_id())
     ORDER BY u.user_id LIMIT p_limit FOR UPDATE SKIP LOCKED
  )
  SELECT array_agg(l.user_id) INTO v_users FROM locked l;
  IF v_users IS NULL THEN
    RETURN 0;
  END IF;
  SELECT array_agg(x.user_id), array_agg(x.at) INTO v_users, v_at
    FROM (SELECT s.user_id, min(s.at) AS at FROM ck_settle(v_users, p_now, p_timeout, p_idle) s GROUP BY s.user_id) x;
  IF v_users IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM ck_recompute(v_users, v_at, p_now);
  RETURN cardinality(v_users);
END $$;

-- Until when a user's stored state holds unless someone writes: the earliest idle decay, expiry or
-- manual presence end ahead. What an instance caches of a user is good until then (docs/ingest.md).
CREATE FUNCTION ck_valid_until(p_user text, p_timeout interval, p_idle interval) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT least((SELECT u.manual_until FROM user_sessions u WHERE u.user_id = p_user),
               (SELECT min(least(ck_session_expiry(s.last_heartbeat, p_timeout),
                                 ck_session_idle(s.state, s.last_heartbeat, s.last_active, p_timeout, p_idle)))
                  FROM sessions s WHERE s.user_id = p_user))
$$;

-- Users as stored, with their sessions, for the cold-cache lookup (no lock, no write): one row per
-- session (a user without one has a single row with NULL session fields).
CREATE FUNCTION ck_liveness(p_users text[], p_timeout interval, p_idle interval)
RETURNS TABLE (
  user_id text, state text, state_since timestamptz, last_heartbeat timestamptz, valid_until timestamptz,
  session_id text, session_state text, session_heartbeat timestamptz, session_active timestamptz
) LANGUAGE sql STABLE AS $$
  SELECT us.user_id, us.current_state, us.state_since, us.last_heartbeat, ck_valid_until(us.user_id, p_timeout, p_idle),
         s.session_id, s.state, s.last_heartbeat, s.last_active
    FROM user_sessions us LEFT JOIN sessions s ON s.user_id = us.user_id
   WHERE us.user_id = ANY (p_users)
$$;

-- ---------------------------------------------------------------------------------------------------
-- Writers. Each locks its users (ck_lock_users), writes session rows and histories, then recomputes
-- every user it touched from the earliest instant that changed.

-- Heartbeats that may change state (the flush, ck_session_heartbeat_alive, handles the rest): a new or
-- ended session starts Online; an active heartbeat brings a session back from idle; every heartbeat keeps
-- its session alive. Answers per (user, session) with the user's status and the session as stored.
DROP FUNCTION ck_heartbeat(text[], timestamptz[], interval);
CREATE FUNCTION ck_session_heartbeat(
  p_users text[], p_sessions text[], p_ts timestamptz[], p_active boolean[], p_clients text[],
  p_timeout interval, p_idle interval
) RETURNS TABLE (
  user_id text, session_id text, state text, state_since timestamptz, last_heartbeat timestamptz, valid_until timestamptz,
  session_state text, session_heartbeat timestamptz, session_active timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
  v_users text[];
  v_now timestamptz;
  v_from text[];
  v_at timestamptz[];
BEGIN
  SELECT array_agg(DISTINCT u ORDER BY u), max(t) INTO v_users, v_now FROM unnest(p_users, p_ts) AS x(u, t);
  SELECT array_agg(l.user_id), array_agg(l.at) INTO v_from, v_at FROM ck_lock_users(v_users, v_now, p_timeout, p_idle) l;

  WITH input AS (
    SELECT i.u, i.s, max(i.t) AS t, bool_or(coalesce(i.a, true)) AS active,
           (array_agg(i.c ORDER BY i.t DESC) FILTER (WHERE i.c IS NOT NULL))[1] AS client
      FROM unnest(p_users, p_sessions, p_ts, p_active, p_clients) AS i(u, s, t, a, c) GROUP BY i.u, i.s
  ), cur AS (
    SELECT i.*, s.state AS cur_state, h.source = 'idle' AS idled,
           -- A heartbeat older than the session's end (it waited in a buffer) does not bring it back.
           coalesce(s.state IS NULL AND h.state = 'Offline' AND h.ts > i.t, false) AS stale
      FROM input i LEFT JOIN sessions s ON s.user_id = i.u AND s.session_id = i.s
      LEFT JOIN LATERAL (SELECT h.source, h.state, h.ts FROM session_checkpoints h WHERE h.user_id = i.u AND h.session_id = i.s
                          ORDER BY h.ts DESC, h.id DESC LIMIT 1) h ON true
  ), upd AS (
    UPDATE sessions s
       SET last_heartbeat = greatest(s.last_heartbeat, c.t),
           last_active = CASE WHEN c.active THEN greatest(s.last_active, c.t) ELSE s.last_active END,
           client = coalesce(c.client, s.client),
           state = CASE WHEN c.active AND c.idled AND s.state = 'Away' THEN 'Online' ELSE s.state END,
           state_since = CASE WHEN c.active AND c.idled AND s.state = 'Away' THEN c.t ELSE s.state_since END
      FROM cur c WHERE s.user_id = c.u AND s.session_id = c.s
  ), started AS (
    INSERT INTO sessions (user_id, session_id, state, state_since, last_heartbeat, last_active, client, started_at)
    SELECT c.u, c.s, 'Online', c.t, c.t, c.t, c.client, c.t FROM cur c WHERE c.cur_state IS NULL AND NOT c.stale
  ), logged AS (
    INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
    SELECT c.u, c.s, 'Online', c.t, 'heartbeat', v_now FROM cur c
     WHERE (c.cur_state IS NULL AND NOT c.stale) OR (c.active AND c.idled AND c.cur_state = 'Away')
     ORDER BY c.t
    RETURNING session_checkpoints.user_id, session_checkpoints.ts
  )
  -- (Data-modifying CTEs run whether or not the query reads them.)
  SELECT v_from || coalesce((SELECT array_agg(l.user_id ORDER BY l.ts, l.user_id) FROM logged l), '{}'),
         v_at || coalesce((SELECT array_agg(l.ts ORDER BY l.ts, l.user_id) FROM logged l), '{}')
    INTO v_from, v_at;

  PERFORM ck_recompute(v_from, v_at, v_now);
  UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, x.t)
    FROM (SELECT i.u, max(i.t) AS t FROM unnest(p_users, p_ts) AS i(u, t) GROUP BY i.u) x WHERE u.user_id = x.u;

  RETURN QUERY
  SELECT i.u, i.s, us.current_state, us.state_since, us.last_heartbeat, ck_valid_until(i.u, p_timeout, p_idle),
         s.state, s.last_heartbeat, s.last_active
    FROM (SELECT DISTINCT x.u, x.s FROM unnest(p_users, p_sessions) AS x(u, s)) i
    JOIN user_sessions us ON us.user_id = i.u
    LEFT JOIN sessions s ON s.user_id = i.u AND s.session_id = i.s;
END $$;

-- The flush's common case: sessions alive and not due for anything only move last_heartbeat (and
-- last_active, for active heartbeats) forward. Under READ COMMITTED the WHERE is re-checked against a
-- row the sweep changed meanwhile. Returns the sessions written; the caller sends the rest through
-- ck_session_heartbeat. Times are epoch ms; p_active_ms is NULL for an inactive heartbeat.
DROP FUNCTION ck_heartbeat_alive(text[], bigint[], interval);
CREATE FUNCTION ck_session_heartbeat_alive(
  p_users text[], p_sessions text[], p_ms bigint[], p_active_ms bigint[], p_timeout interval, p_idle interval
) RETURNS TABLE (user_id text, session_id text) LANGUAGE sql AS $$
  WITH i AS (
    SELECT x.u, x.s, max(to_timestamp(x.ms::float8 / 1000)) AS hb, max(to_timestamp(x.a::float8 / 1000)) AS la
      FROM unnest(p_users, p_sessions, p_ms, p_active_ms) AS x(u, s, ms, a) GROUP BY x.u, x.s ORDER BY x.u, x.s
  )
  UPDATE sessions s
     SET last_heartbeat = greatest(s.last_heartbeat, i.hb), last_active = greatest(s.last_active, coalesce(i.la, s.last_active))
    FROM i
   WHERE s.user_id = i.u AND s.session_id = i.s
     AND ck_session_expiry(s.last_heartbeat, p_timeout) > i.hb
     AND coalesce(ck_session_idle(s.state, s.last_heartbeat, s.last_active, p_timeout, p_idle) > i.hb, true)
  RETURNING s.user_id, s.session_id
$$;

-- Client checkpoints in one set-based transaction (group commit). A checkpoint sets its session's state
-- at ts (state-change-only per session, with back-fill) and keeps the session alive, like a heartbeat at
-- receipt; Offline ends it. Rows of one user apply in their order: round r takes each user's r-th row.
-- Results by position `ord`: `stored` (the session checkpoint), `unchanged` or `unknown_state`.
DROP FUNCTION ck_record_checkpoints(text[], text[], timestamptz[], jsonb[], timestamptz, interval);
DROP FUNCTION ck_batch_rows(text[], text[], timestamptz[], jsonb[]);
CREATE FUNCTION ck_batch_rows(p_users text[], p_sessions text[], p_states text[], p_ts timestamptz[], p_contents jsonb[])
RETURNS TABLE (ord integer, user_id text, session_id text, state text, ts timestamptz, content jsonb, round integer, known boolean)
LANGUAGE sql STABLE AS $$
  SELECT i.ord::integer, i.u, i.ss, i.s, i.t, i.c, (row_number() OVER (PARTITION BY i.u ORDER BY i.ord))::integer,
         EXISTS (SELECT 1 FROM state_types st WHERE st.name = i.s)
    FROM unnest(p_users, p_sessions, p_states, p_ts, p_contents) WITH ORDINALITY AS i(u, ss, s, t, c, ord)
$$;

CREATE FUNCTION ck_record_checkpoints(
  p_users text[], p_sessions text[], p_states text[], p_ts timestamptz[], p_contents jsonb[],
  p_clients text[], p_active boolean[], p_now timestamptz, p_timeout interval, p_idle interval
) RETURNS TABLE (
  ord integer, status text, id bigint, state text, ts timestamptz, content jsonb, received_at timestamptz, previous_state text
) LANGUAGE plpgsql AS $$
DECLARE
  v_users text[];
  v_rounds integer;
  v_from text[];
  v_at timestamptz[];
BEGIN
  RETURN QUERY SELECT b.ord, 'unknown_state'::text, NULL::bigint, b.state, b.ts, b.content, p_now, NULL::text
    FROM ck_batch_rows(p_users, p_sessions, p_states, p_ts, p_contents) b WHERE NOT b.known;
  SELECT array_agg(DISTINCT b.user_id ORDER BY b.user_id), max(b.round) INTO v_users, v_rounds
    FROM ck_batch_rows(p_users, p_sessions, p_states, p_ts, p_contents) b WHERE b.known;
  IF v_users IS NULL THEN
    RETURN;
  END IF;
  SELECT array_agg(l.user_id), array_agg(l.at) INTO v_from, v_at FROM ck_lock_users(v_users, p_now, p_timeout, p_idle) l;

  FOR r IN 1..v_rounds LOOP
    RETURN QUERY
    WITH input AS (
      SELECT b.*, (SELECT h.state FROM session_checkpoints h
                    WHERE h.user_id = b.user_id AND h.session_id = b.session_id AND h.ts <= b.ts
                    ORDER BY h.ts DESC, h.id DESC LIMIT 1) AS prev
        FROM ck_batch_rows(p_users, p_sessions, p_states, p_ts, p_contents) b WHERE b.known AND b.round = r
    ), ins AS (
      INSERT INTO session_checkpoints (user_id, session_id, state, ts, content, source, received_at)
      SELECT i.user_id, i.session_id, i.state, i.ts, i.content, 'client', p_now FROM input i
       WHERE i.prev IS DISTINCT FROM i.state ORDER BY i.ord
      RETURNING session_checkpoints.id, session_checkpoints.user_id
    ), redundant AS (
      DELETE FROM session_checkpoints c USING input i, ins n
       WHERE n.user_id = i.user_id AND c.user_id = i.user_id AND c.session_id = i.session_id AND c.state = i.state
         AND c.id = (SELECT h.id FROM session_checkpoints h WHERE h.user_id = i.user_id AND h.session_id = i.session_id
                      AND h.ts > i.ts ORDER BY h.ts, h.id LIMIT 1)
      RETURNING c.id
    )
    SELECT i.ord, CASE WHEN n.id IS NULL THEN 'unchanged' ELSE 'stored' END, n.id, i.state, i.ts, i.content, p_now,
           CASE WHEN n.id IS NULL THEN NULL ELSE i.prev END
      FROM input i LEFT JOIN ins n ON n.user_id = i.user_id, (SELECT count(*) FROM redundant) AS done;
  END LOOP;

  -- Each session touched follows its history (its latest state; gone when that is Offline) and is alive
  -- as of receipt, active unless every checkpoint of it said otherwise.
  WITH touched AS (
    SELECT b.user_id, b.session_id, bool_or(coalesce(a.active, true)) AS active,
           (array_agg(a.client ORDER BY b.ord DESC) FILTER (WHERE a.client IS NOT NULL))[1] AS client, min(b.ts) AS from_ts
      FROM ck_batch_rows(p_users, p_sessions, p_states, p_ts, p_contents) b
      JOIN unnest(p_clients, p_active) WITH ORDINALITY AS a(client, active, ord) ON a.ord = b.ord
     WHERE b.known GROUP BY b.user_id, b.session_id
  ), latest AS (
    SELECT t.*, l.state, l.ts FROM touched t
    CROSS JOIN LATERAL (SELECT h.state, h.ts FROM session_checkpoints h WHERE h.user_id = t.user_id AND h.session_id = t.session_id
                         ORDER BY h.ts DESC, h.id DESC LIMIT 1) l
  ), ended AS (
    DELETE FROM sessions s USING latest l
     WHERE s.user_id = l.user_id AND s.session_id = l.session_id AND l.state = 'Offline'
  ), kept AS (
    UPDATE sessions s
       SET state = l.state, state_since = l.ts, last_heartbeat = greatest(s.last_heartbeat, p_now),
           last_active = CASE WHEN l.active THEN greatest(s.last_active, p_now) ELSE s.last_active END,
           client = coalesce(l.client, s.client)
      FROM latest l WHERE s.user_id = l.user_id AND s.session_id = l.session_id AND l.state <> 'Offline'
  ), started AS (
    INSERT INTO sessions (user_id, session_id, state, state_since, last_heartbeat, last_active, client, started_at)
    SELECT l.user_id, l.session_id, l.state, l.ts, p_now, p_now, l.client, p_now FROM latest l
     WHERE l.state <> 'Offline' AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = l.user_id AND s.session_id = l.session_id)
  )
  SELECT v_from || coalesce((SELECT array_agg(l.user_id ORDER BY l.user_id, l.session_id) FROM latest l), '{}'),
         v_at || coalesce((SELECT array_agg(l.from_ts ORDER BY l.user_id, l.session_id) FROM latest l), '{}')
    INTO v_from, v_at;

  PERFORM ck_recompute(v_from, v_at, p_now);
  UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, p_now) WHERE u.user_id = ANY (v_users);
END $$;

-- Ends a session now (DELETE /users/:user_id/sessions/:session_id). False when no such session is alive.
CREATE FUNCTION ck_end_session(p_user text, p_session text, p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_from timestamptz;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM user_sessions u WHERE u.user_id = p_user) THEN
    RETURN false;
  END IF;
  SELECT l.at INTO v_from FROM ck_lock_users(ARRAY[p_user], p_now, p_timeout, p_idle) l;
  DELETE FROM sessions s WHERE s.user_id = p_user AND s.session_id = p_session;
  IF NOT FOUND THEN
    PERFORM ck_recompute(ARRAY[p_user], ARRAY[v_from], p_now);
    RETURN false;
  END IF;
  INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
  VALUES (p_user, p_session, 'Offline', p_now, 'session_end', p_now);
  PERFORM ck_recompute(ARRAY[p_user], ARRAY[least(coalesce(v_from, p_now), p_now)], p_now);
  UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, p_now) WHERE u.user_id = p_user;
  RETURN true;
END $$;

-- Sets (p_state) or clears (NULL) a user's manual presence from p_now until p_until (NULL: until cleared).
CREATE FUNCTION ck_set_manual(p_user text, p_state text, p_until timestamptz, p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_from timestamptz;
BEGIN
  SELECT l.at INTO v_from FROM ck_lock_users(ARRAY[p_user], p_now, p_timeout, p_idle) l;
  INSERT INTO manual_presence (user_id, state, set_at, until) VALUES (p_user, p_state, p_now, p_until);
  UPDATE user_sessions u SET manual_state = p_state, manual_until = CASE WHEN p_state IS NULL THEN NULL ELSE p_until END
   WHERE u.user_id = p_user;
  PERFORM ck_recompute(ARRAY[p_user], ARRAY[least(coalesce(v_from, p_now), p_now)], p_now);
END $$;

-- ---------------------------------------------------------------------------------------------------
-- Reads. Status, the timeline and summaries are exact at any instant, before the sweep has written
-- what is due: what is pending is folded from the session rows as of now.

-- The user state changes due by p_now and not yet written (the sweep writes them at the same instants).
CREATE FUNCTION ck_pending(p_users text[], p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (user_id text, ts timestamptz, state text, source text) LANGUAGE sql STABLE AS $$
  WITH u AS (
    SELECT us.user_id, us.current_state, us.manual_state, us.manual_until FROM user_sessions us WHERE us.user_id = ANY (p_users)
  ), ss AS (
    SELECT s.* FROM sessions s WHERE s.user_id = ANY (p_users)
  ), inst AS (
    SELECT ss.user_id, ck_session_expiry(ss.last_heartbeat, p_timeout) AS at, 'timeout' AS source FROM ss
     WHERE ck_session_expiry(ss.last_heartbeat, p_timeout) < p_now
    UNION ALL
    SELECT ss.user_id, ck_session_idle(ss.state, ss.last_heartbeat, ss.last_active, p_timeout, p_idle), 'idle' FROM ss
     WHERE ck_session_idle(ss.state, ss.last_heartbeat, ss.last_active, p_timeout, p_idle) < p_now
    UNION ALL
    SELECT u.user_id, u.manual_until, 'manual' FROM u WHERE u.manual_until < p_now
  ), alive AS (
    SELECT i.user_id, i.at, i.source, x.state, x.since
      FROM inst i JOIN ss ON ss.user_id = i.user_id
      CROSS JOIN LATERAL ck_session_at(ss.state, ss.state_since, ss.last_heartbeat, ss.last_active, i.at, p_timeout, p_idle) x
     WHERE x.state IS NOT NULL
  ), fold AS (
    SELECT i.user_id, i.at, i.source,
           ck_presence(array_agg(a.state ORDER BY a.since) FILTER (WHERE a.state IS NOT NULL),
                       array_agg(a.since ORDER BY a.since) FILTER (WHERE a.state IS NOT NULL),
                       max(u.manual_state) FILTER (WHERE u.manual_until IS NULL OR u.manual_until > i.at)) AS state
      FROM inst i
      JOIN u ON u.user_id = i.user_id
      LEFT JOIN alive a ON a.user_id = i.user_id AND a.at = i.at AND a.source = i.source
     GROUP BY i.user_id, i.at, i.source
  ), seq AS (
    SELECT f.*, lag(f.state) OVER (PARTITION BY f.user_id ORDER BY f.at, f.source) AS prev FROM fold f
  )
  SELECT s.user_id, s.at, s.state, s.source FROM seq s JOIN u ON u.user_id = s.user_id
   WHERE s.state IS DISTINCT FROM coalesce(s.prev, u.current_state)
$$;

-- Users' status at p_now as the API reports it. p_pending: per user, the newest heartbeat an instance
-- acknowledged and has not flushed yet (NULL: none); it counts as stored.
DROP FUNCTION ck_status(text[], timestamptz[], timestamptz, interval);
CREATE FUNCTION ck_status(p_users text[], p_pending timestamptz[], p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (
  user_id text, state text, online boolean, state_since float8, last_heartbeat float8, sessions integer,
  manual_state text, manual_until float8
) LANGUAGE sql STABLE AS $$
  WITH i AS (SELECT x.u, x.pending FROM unnest(p_users, p_pending) AS x(u, pending)),
  p AS (
    SELECT DISTINCT ON (pe.user_id) pe.user_id, pe.ts, pe.state FROM ck_pending(p_users, p_now, p_timeout, p_idle) pe
     ORDER BY pe.user_id, pe.ts DESC, pe.source
  )
  SELECT us.user_id, t.name, t.online, ck_ms(coalesce(p.ts, us.state_since)),
         ck_ms(greatest(us.last_heartbeat, i.pending, (SELECT max(s.last_heartbeat) FROM sessions s WHERE s.user_id = us.user_id))),
         (SELECT count(*)::integer FROM sessions s
           WHERE s.user_id = us.user_id AND ck_session_expiry(s.last_heartbeat, p_timeout) >= p_now),
         CASE WHEN us.manual_until IS NULL OR us.manual_until >= p_now THEN us.manual_state END,
         CASE WHEN us.manual_until >= p_now AND us.manual_state IS NOT NULL THEN ck_ms(us.manual_until) END
    FROM i JOIN user_sessions us ON us.user_id = i.u
    LEFT JOIN p ON p.user_id = us.user_id
    JOIN state_types t ON t.name = coalesce(p.state, us.current_state)
$$;

-- A user's alive sessions at p_now, each in its state as of now.
CREATE FUNCTION ck_user_sessions(p_user text, p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (session_id text, state text, state_since float8, last_heartbeat float8, last_active float8, client text)
LANGUAGE sql STABLE AS $$
  SELECT s.session_id, x.state, ck_ms(x.since), ck_ms(s.last_heartbeat), ck_ms(s.last_active), s.client
    FROM sessions s CROSS JOIN LATERAL
         ck_session_at(s.state, s.state_since, s.last_heartbeat, s.last_active, p_now, p_timeout, p_idle) x
   WHERE s.user_id = p_user AND x.state IS NOT NULL
   ORDER BY s.session_id
$$;

-- Users' intervals clipped to [p_from, p_to) and to p_now: the stored timeline with LEAD(), then what is
-- pending (ck_pending); the last interval runs to p_now. Time before a user's first checkpoint is not counted.
DROP FUNCTION ck_summaries(text[], date, date, text, interval, timestamptz, interval);
DROP FUNCTION ck_days(text[], date, date, text, interval, timestamptz, interval);
DROP FUNCTION ck_intervals(text[], timestamptz, timestamptz, timestamptz, interval);
CREATE FUNCTION ck_intervals(p_users text[], p_from timestamptz, p_to timestamptz, p_now timestamptz, p_timeout interval, p_idle interval)
RETURNS TABLE (user_id text, state text, s timestamptz, e timestamptz)
LANGUAGE sql STABLE AS $$
  WITH u AS (SELECT DISTINCT x AS uid FROM unnest(p_users) AS x),
  r AS (
    SELECT b.user_id, b.state, b.ts, 0 AS k, b.id FROM u CROSS JOIN LATERAL (
      SELECT c.user_id, c.state, c.ts, c.id FROM checkpoints c
       WHERE c.user_id = u.uid AND c.ts <= p_from ORDER BY c.ts DESC, c.id DESC LIMIT 1) b
    UNION ALL
    SELECT c.user_id, c.state, c.ts, 0, c.id FROM checkpoints c JOIN u ON c.user_id = u.uid
     WHERE c.ts > p_from AND c.ts < p_to
    UNION ALL
    SELECT a.user_id, a.state, a.ts, 0, a.id FROM u CROSS JOIN LATERAL (
      SELECT c.user_id, c.state, c.ts, c.id FROM checkpoints c
       WHERE c.user_id = u.uid AND c.ts >= p_to ORDER BY c.ts, c.id LIMIT 1) a
    UNION ALL
    -- Pending changes come after every stored row.
    SELECT pe.user_id, pe.state, pe.ts, 1, 0 FROM ck_pending(p_users, p_now, p_timeout, p_idle) pe WHERE pe.ts < p_to
  ), iv AS (
    SELECT r.user_id, r.state, r.ts AS s, lead(r.ts) OVER (PARTITION BY r.user_id ORDER BY r.ts, r.k, r.id) AS nxt FROM r
  )
  SELECT iv.user_id, iv.state, greatest(iv.s, p_from), least(coalesce(iv.nxt, p_now), p_to, p_now) FROM iv
   WHERE least(coalesce(iv.nxt, p_now), p_to, p_now) > greatest(iv.s, p_from)
$$;

CREATE FUNCTION ck_days(
  p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamptz, p_timeout interval, p_idle interval
) RETURNS TABLE (user_id text, day date, state text, seconds numeric)
LANGUAGE sql STABLE AS $$
  WITH iv AS (
    SELECT * FROM ck_intervals(p_users, (p_from + p_day_start) AT TIME ZONE p_tz,
                               ((p_to + 1) + p_day_start) AT TIME ZONE p_tz, p_now, p_timeout, p_idle)
  ), pieces AS (
    SELECT iv.user_id, iv.state, d.day,
           greatest(iv.s, (d.day + p_day_start) AT TIME ZONE p_tz) AS ps,
           least(iv.e, ((d.day + 1) + p_day_start) AT TIME ZONE p_tz) AS pe
      FROM iv CROSS JOIN LATERAL (
        SELECT ((iv.s AT TIME ZONE p_tz) - p_day_start)::date + k AS day
          FROM generate_series(0, (((iv.e - interval '1 millisecond') AT TIME ZONE p_tz) - p_day_start)::date
                                  - ((iv.s AT TIME ZONE p_tz) - p_day_start)::date) AS k
      ) d
  )
  SELECT pieces.user_id, pieces.day, pieces.state, sum(extract(epoch FROM pieces.pe - pieces.ps))::numeric(14, 3)
    FROM pieces WHERE pieces.pe > pieces.ps
   GROUP BY pieces.user_id, pieces.day, pieces.state
$$;

CREATE FUNCTION ck_summaries(
  p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamptz, p_timeout interval, p_idle interval
) RETURNS TABLE (user_id text, day date, state text, seconds float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_users text[];
  v_upto date[];
  v_live_from date;
  v_lo text;
  v_hi text;
BEGIN
  SELECT min(u), max(u) INTO v_lo, v_hi FROM unnest(p_users) AS u;
  SELECT array_agg(u.u), array_agg(
           CASE WHEN p_day_start = interval '0' AND p.tz = p_tz THEN (p.valid_until AT TIME ZONE p_tz)::date
                ELSE p_from END)
    INTO v_users, v_upto
    FROM unnest(p_users) AS u(u)
    LEFT JOIN summary_progress p ON p.user_id = u.u AND p.user_id BETWEEN v_lo AND v_hi;
  v_live_from := greatest(p_from, (SELECT min(x) FROM unnest(v_upto) AS x));
  RETURN QUERY
    SELECT s.user_id, s.day, s.state, s.seconds::float8
      FROM state_summaries s JOIN unnest(v_users, v_upto) AS c(uid, upto) ON s.user_id = c.uid
     WHERE s.user_id BETWEEN v_lo AND v_hi
       AND s.day >= p_from AND s.day <= p_to AND s.day < c.upto;
  IF v_live_from <= p_to THEN
    RETURN QUERY
      SELECT d.user_id, d.day, d.state, d.seconds::float8
        FROM ck_days(v_users, v_live_from, p_to, p_tz, p_day_start, p_now, p_timeout, p_idle) d
        JOIN unnest(v_users, v_upto) AS c(uid, upto) ON d.user_id = c.uid
       WHERE d.day >= c.upto;
  END IF;
END $$;

DROP FUNCTION ck_aggregate_summaries(timestamptz, interval, integer);
CREATE FUNCTION ck_aggregate_summaries(
  p_now timestamptz DEFAULT now(), p_timeout interval DEFAULT '60 seconds', p_batch integer DEFAULT 1000,
  p_idle interval DEFAULT '0'
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_users text[];
  v_tz text;
  v_group text[];
  v_from date;
  v_today date;
BEGIN
  SELECT array_agg(x.user_id) INTO v_users FROM (
    SELECT p.user_id FROM summary_progress p WHERE p.due_at <= p_now
     ORDER BY p.due_at LIMIT p_batch FOR UPDATE SKIP LOCKED) x;
  IF v_users IS NULL THEN
    RETURN 0;
  END IF;
  FOR v_tz IN SELECT DISTINCT p.tz FROM summary_progress p WHERE p.user_id = ANY(v_users) LOOP
    v_today := (p_now AT TIME ZONE v_tz)::date;
    SELECT array_agg(p.user_id), min((p.valid_until AT TIME ZONE v_tz)::date) INTO v_group, v_from
      FROM summary_progress p WHERE p.user_id = ANY(v_users) AND p.tz = v_tz;
    DELETE FROM state_summaries s USING summary_progress p
     WHERE p.user_id = ANY(v_group) AND s.user_id = p.user_id AND s.day >= (p.valid_until AT TIME ZONE v_tz)::date;
    IF v_from < v_today THEN
      INSERT INTO state_summaries (user_id, day, state, seconds)
      SELECT d.user_id, d.day, d.state, d.seconds
        FROM ck_days(v_group, v_from, v_today - 1, v_tz, interval '0', p_now, p_timeout, p_idle) d
        JOIN summary_progress p ON p.user_id = d.user_id
       WHERE d.day >= (p.valid_until AT TIME ZONE v_tz)::date;
    END IF;
    UPDATE summary_progress p
       SET valid_until = v_today::timestamp AT TIME ZONE v_tz,
           due_at = (v_today + 1)::timestamp AT TIME ZONE v_tz
     WHERE p.user_id = ANY(v_group);
  END LOOP;
  RETURN cardinality(v_users);
END $$;

-- The single-stream rules these replace.
DROP FUNCTION ck_effective_state(text, timestamptz, timestamptz, timestamptz, interval);
DROP FUNCTION ck_expired_at(text, timestamptz, timestamptz, timestamptz, interval);
