-- The schema that migrations/*.sql build, as the catalog shows it (generated: npm run schema:snapshot).

CREATE TABLE api_keys (
  id text NOT NULL,
  name text NOT NULL,
  secret_sha256 bytea NOT NULL,
  scopes text[] NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  revoked_at timestamp with time zone,
  CONSTRAINT api_keys_pkey PRIMARY KEY (id),
  CONSTRAINT api_keys_scopes_check CHECK ((scopes <@ ARRAY['ingest'::text, 'read'::text, 'admin'::text]))
);

CREATE TABLE checkpoints (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  user_id text NOT NULL,
  state text NOT NULL,
  ts timestamp with time zone NOT NULL,
  content jsonb,
  source text NOT NULL,
  received_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT checkpoints_pkey PRIMARY KEY (id),
  CONSTRAINT checkpoints_source_check CHECK ((source = ANY (ARRAY['client'::text, 'heartbeat'::text, 'timeout'::text])))
);
CREATE INDEX checkpoints_ts ON checkpoints USING btree (ts, id);
CREATE INDEX checkpoints_user_ts ON checkpoints USING btree (user_id, ts, id);
CREATE TRIGGER checkpoints_events AFTER INSERT ON checkpoints REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_log_events();
CREATE TRIGGER checkpoints_state_check AFTER INSERT ON checkpoints REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_check_checkpoint_states();
CREATE TRIGGER checkpoints_summaries_del AFTER DELETE ON checkpoints REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_summaries_invalidate();
CREATE TRIGGER checkpoints_summaries_ins AFTER INSERT ON checkpoints REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_summaries_invalidate();

CREATE TABLE ck_migrations (
  id integer NOT NULL,
  name text NOT NULL,
  applied_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT ck_migrations_pkey PRIMARY KEY (id)
);

CREATE TABLE ck_settings (
  name text NOT NULL,
  value text NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT ck_settings_pkey PRIMARY KEY (name)
);

CREATE TABLE events (
  id bigint NOT NULL,
  xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
  user_id text NOT NULL,
  state text NOT NULL,
  previous_state text,
  ts timestamp with time zone NOT NULL,
  source text NOT NULL,
  content jsonb,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT events_pkey PRIMARY KEY (id)
);
CREATE INDEX events_created ON events USING btree (created_at);
CREATE INDEX events_position ON events USING btree (xid, id);
CREATE INDEX events_user_position ON events USING btree (user_id, xid, id);
CREATE TRIGGER events_webhooks AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_webhooks_enqueue();

CREATE TABLE job_runs (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  job text NOT NULL,
  instance text NOT NULL,
  started_at timestamp with time zone NOT NULL,
  finished_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
  result jsonb,
  CONSTRAINT job_runs_pkey PRIMARY KEY (id)
);
CREATE INDEX job_runs_job_started ON job_runs USING btree (job, started_at);
CREATE INDEX job_runs_started ON job_runs USING btree (started_at);

CREATE TABLE retention_progress (
  singleton boolean DEFAULT true NOT NULL,
  done_ts timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
  done_id bigint DEFAULT 0 NOT NULL,
  CONSTRAINT retention_progress_pkey PRIMARY KEY (singleton),
  CONSTRAINT retention_progress_singleton_check CHECK (singleton)
);

CREATE TABLE state_summaries (
  user_id text NOT NULL,
  day date NOT NULL,
  state text NOT NULL,
  seconds numeric(14,3) NOT NULL,
  CONSTRAINT state_summaries_pkey PRIMARY KEY (user_id, day, state) INCLUDE (seconds)
);

CREATE TABLE state_types (
  name text NOT NULL,
  online boolean NOT NULL,
  builtin boolean DEFAULT false NOT NULL,
  color text,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT state_types_color_check CHECK ((color ~ '^#[0-9a-fA-F]{6}$'::text)),
  CONSTRAINT state_types_name_check CHECK ((name ~ '^[A-Za-z][A-Za-z0-9_]{0,63}$'::text)),
  CONSTRAINT state_types_pkey PRIMARY KEY (name)
);
CREATE TRIGGER state_types_append_only BEFORE DELETE OR UPDATE OF name ON state_types FOR EACH ROW EXECUTE FUNCTION ck_state_types_append_only();
CREATE TRIGGER state_types_no_truncate BEFORE TRUNCATE ON state_types FOR EACH STATEMENT EXECUTE FUNCTION ck_state_types_append_only();

CREATE TABLE summary_progress (
  user_id text NOT NULL,
  tz text NOT NULL,
  valid_until timestamp with time zone NOT NULL,
  due_at timestamp with time zone NOT NULL,
  CONSTRAINT summary_progress_pkey PRIMARY KEY (user_id)
);
CREATE INDEX summary_progress_due ON summary_progress USING btree (due_at);

CREATE TABLE user_sessions (
  user_id text NOT NULL,
  current_state text NOT NULL,
  state_since timestamp with time zone NOT NULL,
  last_heartbeat timestamp with time zone NOT NULL,
  updated_at timestamp with time zone DEFAULT now() NOT NULL,
  expiry_bucket timestamp with time zone GENERATED ALWAYS AS (date_bin('00:00:10'::interval, last_heartbeat, '1970-01-01 00:00:00+00'::timestamp with time zone)) STORED,
  event_xid xid8,
  CONSTRAINT user_sessions_pkey PRIMARY KEY (user_id)
) WITH (fillfactor=50);
CREATE INDEX user_sessions_expiry ON user_sessions USING btree (expiry_bucket) WHERE (current_state <> 'Offline'::text);
CREATE INDEX user_sessions_state ON user_sessions USING btree (current_state, user_id);

CREATE TABLE user_settings (
  user_id text NOT NULL,
  timezone text DEFAULT 'UTC'::text NOT NULL,
  updated_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT user_settings_pkey PRIMARY KEY (user_id)
);

CREATE TABLE webhook_deliveries (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  webhook_id bigint NOT NULL,
  event_id bigint NOT NULL,
  user_id text NOT NULL,
  event jsonb NOT NULL,
  status text DEFAULT 'pending'::text NOT NULL,
  attempts integer DEFAULT 0 NOT NULL,
  next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
  locked_until timestamp with time zone,
  last_status integer,
  last_error text,
  delivered_at timestamp with time zone,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
  CONSTRAINT webhook_deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text]))),
  CONSTRAINT webhook_deliveries_webhook_id_event_id_key UNIQUE (webhook_id, event_id),
  CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries USING btree (webhook_id, next_attempt_at, id) WHERE (status = 'pending'::text);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries USING btree (created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries USING btree (next_attempt_at) WHERE (status = 'pending'::text);
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries USING btree (webhook_id) WHERE ((status = 'pending'::text) AND (locked_until IS NOT NULL));
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries USING btree (webhook_id, user_id, event_id) WHERE (status = 'pending'::text);

CREATE TABLE webhooks (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  url text NOT NULL,
  user_ids text[],
  states text[],
  secret text NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT webhooks_pkey PRIMARY KEY (id),
  CONSTRAINT webhooks_url_check CHECK ((url ~ '^https?://'::text))
);

CREATE OR REPLACE FUNCTION ck_aggregate_summaries(p_now timestamp with time zone DEFAULT now(), p_timeout interval DEFAULT '00:01:00'::interval, p_batch integer DEFAULT 1000)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
        FROM ck_days(v_group, v_from, v_today - 1, v_tz, interval '0', p_now, p_timeout) d
        JOIN summary_progress p ON p.user_id = d.user_id
       WHERE d.day >= (p.valid_until AT TIME ZONE v_tz)::date;
    END IF;
    UPDATE summary_progress p
       SET valid_until = v_today::timestamp AT TIME ZONE v_tz,
           due_at = (v_today + 1)::timestamp AT TIME ZONE v_tz
     WHERE p.user_id = ANY(v_group);
  END LOOP;
  RETURN cardinality(v_users);
END $function$;

CREATE OR REPLACE FUNCTION ck_batch_rows(p_users text[], p_states text[], p_ts timestamp with time zone[], p_contents jsonb[])
 RETURNS TABLE(ord integer, user_id text, state text, ts timestamp with time zone, content jsonb, round integer, known boolean)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT i.ord::integer, i.u, i.s, i.t, i.c, (row_number() OVER (PARTITION BY i.u ORDER BY i.ord))::integer,
         EXISTS (SELECT 1 FROM state_types st WHERE st.name = i.s)
    FROM unnest(p_users, p_states, p_ts, p_contents) WITH ORDINALITY AS i(u, s, t, c, ord)
$function$;

CREATE OR REPLACE FUNCTION ck_check_checkpoint_states()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_state text;
BEGIN
  SELECT n.state INTO v_state FROM (SELECT DISTINCT state FROM new_rows) n
   WHERE NOT EXISTS (SELECT 1 FROM state_types t WHERE t.name = n.state) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'state "%" is not a state type', v_state
      USING ERRCODE = 'foreign_key_violation', TABLE = 'checkpoints', COLUMN = 'state';
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION ck_days(p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamp with time zone, p_timeout interval)
 RETURNS TABLE(user_id text, day date, state text, seconds numeric)
 LANGUAGE sql
 STABLE
AS $function$
  WITH iv AS (
    SELECT * FROM ck_intervals(p_users, (p_from + p_day_start) AT TIME ZONE p_tz,
                               ((p_to + 1) + p_day_start) AT TIME ZONE p_tz, p_now, p_timeout)
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
$function$;

CREATE OR REPLACE FUNCTION ck_delete_old_checkpoints(p_before timestamp with time zone, p_batch integer, OUT deleted integer, OUT passed integer)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_from_ts timestamptz;
  v_from_id bigint;
  v_setting text := current_setting('ck.retention', true);
BEGIN
  SELECT p.done_ts, p.done_id INTO v_from_ts, v_from_id FROM retention_progress p FOR UPDATE;
  PERFORM set_config('ck.retention', 'on', true);
  WITH batch AS (
    SELECT c.user_id, c.ts, c.id FROM checkpoints c
     WHERE (c.ts, c.id) > (v_from_ts, v_from_id) AND c.ts < p_before
     ORDER BY c.ts, c.id LIMIT p_batch
  ), keep AS (
    SELECT DISTINCT ON (x.user_id) x.user_id, x.ts, x.id FROM batch x ORDER BY x.user_id, x.ts DESC, x.id DESC
  ), gone AS (
    DELETE FROM checkpoints c USING keep k
     WHERE c.user_id = k.user_id AND (c.ts, c.id) < (k.ts, k.id)
    RETURNING 1
  ), moved AS (
    UPDATE retention_progress p SET done_ts = l.ts, done_id = l.id
      FROM (SELECT x.ts, x.id FROM batch x ORDER BY x.ts DESC, x.id DESC LIMIT 1) l
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM batch)::integer INTO deleted, passed;
  -- Statement triggers have fired; later deletes in the caller's transaction invalidate as usual.
  PERFORM set_config('ck.retention', coalesce(v_setting, ''), true);
END $function$;

CREATE OR REPLACE FUNCTION ck_effective_state(p_state text, p_since timestamp with time zone, p_last_heartbeat timestamp with time zone, p_at timestamp with time zone, p_timeout interval)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT CASE WHEN ck_expired_at(p_state, p_since, p_last_heartbeat, p_at, p_timeout) IS NULL THEN p_state ELSE 'Offline' END
$function$;

CREATE OR REPLACE FUNCTION ck_event_frontier()
 RETURNS xid8
 LANGUAGE sql
 STABLE
AS $function$
  SELECT pg_snapshot_xmin(pg_current_snapshot())
$function$;

CREATE OR REPLACE FUNCTION ck_expired_at(p_state text, p_since timestamp with time zone, p_last_heartbeat timestamp with time zone, p_at timestamp with time zone, p_timeout interval)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT CASE WHEN p_state <> 'Offline' AND p_last_heartbeat + p_timeout < p_at
              THEN greatest(p_last_heartbeat + p_timeout, p_since) END
$function$;

CREATE OR REPLACE FUNCTION ck_heartbeat(p_users text[], p_ts timestamp with time zone[], p_timeout interval)
 RETURNS TABLE(user_id text, state text, state_since timestamp with time zone, last_heartbeat timestamp with time zone, changed boolean)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_heartbeat_alive(p_users text[], p_ms bigint[], p_timeout interval)
 RETURNS TABLE(user_id text, state text, state_since double precision, last_heartbeat double precision)
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_intervals(p_users text[], p_from timestamp with time zone, p_to timestamp with time zone, p_now timestamp with time zone, p_timeout interval)
 RETURNS TABLE(user_id text, state text, s timestamp with time zone, e timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_log_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_ms(t timestamp with time zone)
 RETURNS double precision
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT round(extract(epoch FROM t) * 1000)::float8
$function$;

CREATE OR REPLACE FUNCTION ck_previous_state(p_user text, p_ts timestamp with time zone, p_id bigint)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT p.state FROM checkpoints p WHERE p.user_id = p_user AND (p.ts, p.id) < (p_ts, p_id)
   ORDER BY p.ts DESC, p.id DESC LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION ck_prune_events(p_keep interval, p_limit integer DEFAULT 50000)
 RETURNS integer
 LANGUAGE sql
AS $function$
  WITH gone AS (
    DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < now() - p_keep ORDER BY e.created_at LIMIT p_limit)
    RETURNING 1)
  SELECT count(*)::integer FROM gone
$function$;

CREATE OR REPLACE FUNCTION ck_prune_job_runs(p_before timestamp with time zone, p_batch integer)
 RETURNS integer
 LANGUAGE sql
AS $function$
  WITH gone AS (
    DELETE FROM job_runs j WHERE j.id IN (
      SELECT x.id FROM job_runs x WHERE x.started_at < p_before ORDER BY x.started_at LIMIT p_batch)
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$function$;

CREATE OR REPLACE FUNCTION ck_prune_webhook_deliveries(p_keep interval, p_limit integer DEFAULT 50000)
 RETURNS integer
 LANGUAGE sql
AS $function$
  WITH gone AS (
    DELETE FROM webhook_deliveries WHERE id IN (
      SELECT d.id FROM webhook_deliveries d WHERE d.created_at < now() - p_keep AND d.status <> 'pending' LIMIT p_limit)
    RETURNING 1)
  SELECT count(*)::integer FROM gone
$function$;

CREATE OR REPLACE FUNCTION ck_record_checkpoints(p_users text[], p_states text[], p_ts timestamp with time zone[], p_contents jsonb[], p_now timestamp with time zone, p_timeout interval)
 RETURNS TABLE(ord integer, status text, id bigint, state text, ts timestamp with time zone, content jsonb, received_at timestamp with time zone, previous_state text)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_set_timezone(p_user text, p_tz text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM now() AT TIME ZONE p_tz; -- raises 22023 for an unknown zone
  INSERT INTO user_settings (user_id, timezone) VALUES (p_user, p_tz)
  ON CONFLICT (user_id) DO UPDATE SET timezone = excluded.timezone, updated_at = now();
  IF EXISTS (SELECT 1 FROM summary_progress p WHERE p.user_id = p_user AND p.tz <> p_tz) THEN
    DELETE FROM state_summaries s WHERE s.user_id = p_user;
    UPDATE summary_progress p
       SET tz = p_tz,
           valid_until = coalesce((SELECT min(c.ts) FROM checkpoints c WHERE c.user_id = p_user), p.valid_until),
           due_at = coalesce((SELECT min(c.ts) FROM checkpoints c WHERE c.user_id = p_user), p.due_at)
     WHERE p.user_id = p_user;
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION ck_state_types_append_only()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION 'state types cannot be renamed or deleted' USING ERRCODE = 'restrict_violation';
END $function$;

CREATE OR REPLACE FUNCTION ck_status(p_users text[], p_pending timestamp with time zone[], p_now timestamp with time zone, p_timeout interval)
 RETURNS TABLE(user_id text, state text, online boolean, state_since double precision, last_heartbeat double precision)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT s.user_id, t.name, t.online, ck_ms(coalesce(x.e, s.state_since)), ck_ms(h.hb)
    FROM unnest(p_users, p_pending) AS i(u, pending)
    JOIN user_sessions s ON s.user_id = i.u
    CROSS JOIN LATERAL (SELECT greatest(s.last_heartbeat, i.pending) AS hb) h
    CROSS JOIN LATERAL (SELECT ck_expired_at(s.current_state, s.state_since, h.hb, p_now, p_timeout) AS e) x
    JOIN state_types t ON t.name = CASE WHEN x.e IS NULL THEN s.current_state ELSE 'Offline' END
$function$;

CREATE OR REPLACE FUNCTION ck_summaries(p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamp with time zone, p_timeout interval)
 RETURNS TABLE(user_id text, day date, state text, seconds double precision)
 LANGUAGE plpgsql
 STABLE
AS $function$
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
        FROM ck_days(v_users, v_live_from, p_to, p_tz, p_day_start, p_now, p_timeout) d
        JOIN unnest(v_users, v_upto) AS c(uid, upto) ON d.user_id = c.uid
       WHERE d.day >= c.upto;
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION ck_summaries_invalidate()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF current_setting('ck.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO summary_progress AS p (user_id, tz, valid_until, due_at)
    SELECT r.user_id, coalesce(min(us.timezone), 'UTC'), min(r.ts), min(r.ts)
      FROM new_rows r LEFT JOIN user_settings us ON us.user_id = r.user_id GROUP BY r.user_id
    ON CONFLICT (user_id) DO UPDATE
      SET valid_until = excluded.valid_until, due_at = least(p.due_at, excluded.due_at)
      WHERE excluded.valid_until < p.valid_until;
  ELSE
    UPDATE summary_progress p SET valid_until = o.ts, due_at = least(p.due_at, o.ts)
      FROM (SELECT user_id, min(ts) AS ts FROM old_rows GROUP BY user_id) o
     WHERE p.user_id = o.user_id AND o.ts < p.valid_until;
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION ck_sweep_offline(p_timeout interval, p_now timestamp with time zone DEFAULT now(), p_limit integer DEFAULT 100000)
 RETURNS integer
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval, p_per_webhook integer)
 RETURNS TABLE(id bigint, webhook_id bigint, url text, secret text, event jsonb, attempts integer)
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_finish(p_ids bigint[], p_attempts integer[], p_ok boolean[], p_codes integer[], p_errors text[], p_base_ms integer, p_cap interval DEFAULT '01:00:00'::interval, p_max_age interval DEFAULT '24:00:00'::interval)
 RETURNS double precision
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_webhooks_enqueue()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
END $function$;
