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
  session_id text,
  CONSTRAINT checkpoints_pkey PRIMARY KEY (user_id, id),
  CONSTRAINT checkpoints_source_check CHECK ((source = ANY (ARRAY['client'::text, 'heartbeat'::text, 'timeout'::text, 'idle'::text, 'manual'::text, 'session_end'::text])))
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
  type text DEFAULT 'state'::text NOT NULL,
  session_id text,
  CONSTRAINT events_pkey PRIMARY KEY (user_id, id),
  CONSTRAINT events_type_check CHECK ((type = ANY (ARRAY['state'::text, 'session'::text])))
);
CREATE INDEX events_created ON events USING btree (created_at);
CREATE INDEX events_id ON events USING btree (id);
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

CREATE TABLE manual_presence (
  id bigint DEFAULT nextval((pg_get_serial_sequence('checkpoints'::text, 'id'::text))::regclass) NOT NULL,
  user_id text NOT NULL,
  state text,
  set_at timestamp with time zone NOT NULL,
  until timestamp with time zone,
  CONSTRAINT manual_presence_pkey PRIMARY KEY (user_id, id)
);
CREATE INDEX manual_presence_set_at ON manual_presence USING btree (set_at, id);
CREATE INDEX manual_presence_user ON manual_presence USING btree (user_id, set_at, id);

CREATE TABLE retention_progress (
  singleton boolean DEFAULT true NOT NULL,
  done_ts timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
  done_id bigint DEFAULT 0 NOT NULL,
  sessions_ts timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
  sessions_id bigint DEFAULT 0 NOT NULL,
  manual_ts timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
  manual_id bigint DEFAULT 0 NOT NULL,
  CONSTRAINT retention_progress_pkey PRIMARY KEY (singleton),
  CONSTRAINT retention_progress_singleton_check CHECK (singleton)
);

CREATE TABLE session_checkpoints (
  id bigint DEFAULT nextval((pg_get_serial_sequence('checkpoints'::text, 'id'::text))::regclass) NOT NULL,
  user_id text NOT NULL,
  session_id text NOT NULL,
  state text NOT NULL,
  ts timestamp with time zone NOT NULL,
  content jsonb,
  source text NOT NULL,
  received_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT session_checkpoints_pkey PRIMARY KEY (user_id, id),
  CONSTRAINT session_checkpoints_source_check CHECK ((source = ANY (ARRAY['client'::text, 'heartbeat'::text, 'timeout'::text, 'idle'::text, 'session_end'::text])))
);
CREATE INDEX session_checkpoints_session ON session_checkpoints USING btree (user_id, session_id, ts, id);
CREATE INDEX session_checkpoints_ts ON session_checkpoints USING btree (ts, id);
CREATE INDEX session_checkpoints_user_ts ON session_checkpoints USING btree (user_id, ts);
CREATE TRIGGER session_checkpoints_events AFTER INSERT ON session_checkpoints REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_log_events();
CREATE TRIGGER session_checkpoints_state_check AFTER INSERT ON session_checkpoints REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_check_checkpoint_states();

CREATE TABLE sessions (
  user_id text NOT NULL,
  session_id text NOT NULL,
  state text NOT NULL,
  state_since timestamp with time zone NOT NULL,
  last_heartbeat timestamp with time zone NOT NULL,
  last_active timestamp with time zone NOT NULL,
  client text,
  started_at timestamp with time zone NOT NULL,
  expiry_bucket timestamp with time zone GENERATED ALWAYS AS (date_bin('00:00:10'::interval, last_heartbeat, '1970-01-01 00:00:00+00'::timestamp with time zone)) STORED,
  idle_bucket timestamp with time zone GENERATED ALWAYS AS (date_bin('00:00:10'::interval, last_active, '1970-01-01 00:00:00+00'::timestamp with time zone)) STORED,
  CONSTRAINT sessions_pkey PRIMARY KEY (user_id, session_id),
  CONSTRAINT sessions_state_check CHECK ((state <> 'Offline'::text))
) WITH (fillfactor=50);
CREATE INDEX sessions_expiry ON sessions USING btree (expiry_bucket);
CREATE INDEX sessions_idle ON sessions USING btree (idle_bucket) WHERE (state = 'Online'::text);

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
  priority integer DEFAULT 30 NOT NULL,
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

CREATE TABLE token_revocations (
  jti text NOT NULL,
  expires_at timestamp with time zone NOT NULL,
  revoked_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT token_revocations_pkey PRIMARY KEY (jti)
);
CREATE INDEX token_revocations_revoked ON token_revocations USING btree (revoked_at);

CREATE TABLE tokens (
  user_id text NOT NULL,
  jti text NOT NULL,
  scopes text[] NOT NULL,
  issued_at timestamp with time zone DEFAULT now() NOT NULL,
  expires_at timestamp with time zone NOT NULL,
  CONSTRAINT tokens_pkey PRIMARY KEY (user_id, jti)
);
CREATE INDEX tokens_expires ON tokens USING btree (expires_at);
CREATE INDEX tokens_jti ON tokens USING btree (jti);

CREATE TABLE user_erasures (
  user_hash bytea NOT NULL,
  erased_at timestamp with time zone NOT NULL,
  CONSTRAINT user_erasures_pkey PRIMARY KEY (user_hash)
);

CREATE TABLE user_sessions (
  user_id text NOT NULL,
  current_state text NOT NULL,
  state_since timestamp with time zone NOT NULL,
  last_heartbeat timestamp with time zone NOT NULL,
  updated_at timestamp with time zone DEFAULT now() NOT NULL,
  event_xid xid8,
  manual_state text,
  manual_until timestamp with time zone,
  CONSTRAINT user_sessions_pkey PRIMARY KEY (user_id)
) WITH (fillfactor=50);
CREATE INDEX user_sessions_manual_due ON user_sessions USING btree (manual_until) WHERE (manual_until IS NOT NULL);
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
  CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (user_id, id),
  CONSTRAINT webhook_deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text]))),
  CONSTRAINT webhook_deliveries_user_webhook_event_key UNIQUE (user_id, webhook_id, event_id),
  CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries USING btree (webhook_id, next_attempt_at, id) WHERE (status = 'pending'::text);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries USING btree (created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries USING btree (next_attempt_at) WHERE (status = 'pending'::text);
CREATE INDEX webhook_deliveries_id ON webhook_deliveries USING btree (id);
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries USING btree (webhook_id) WHERE ((status = 'pending'::text) AND (locked_until IS NOT NULL));
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries USING btree (webhook_id, user_id, event_id) WHERE (status = 'pending'::text);

CREATE TABLE webhooks (
  id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  url text NOT NULL,
  user_ids text[],
  states text[],
  secret text NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  previous_secret text,
  previous_secret_expires_at timestamp with time zone,
  disabled_at timestamp with time zone,
  disabled_reason text,
  CONSTRAINT webhooks_disabled_reason CHECK (((disabled_at IS NULL) = (disabled_reason IS NULL))),
  CONSTRAINT webhooks_pkey PRIMARY KEY (id),
  CONSTRAINT webhooks_url_check CHECK ((url ~ '^https?://'::text))
);

CREATE OR REPLACE FUNCTION ck_aggregate_summaries(p_now timestamp with time zone DEFAULT now(), p_timeout interval DEFAULT '00:01:00'::interval, p_batch integer DEFAULT 1000, p_idle interval DEFAULT '00:00:00'::interval)
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
END $function$;

CREATE OR REPLACE FUNCTION ck_batch_rows(p_users text[], p_sessions text[], p_states text[], p_ts timestamp with time zone[], p_contents jsonb[])
 RETURNS TABLE(ord integer, user_id text, session_id text, state text, ts timestamp with time zone, content jsonb, round integer, known boolean)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT i.ord::integer, i.u, i.ss, i.s, i.t, i.c, (row_number() OVER (PARTITION BY i.u ORDER BY i.ord))::integer,
         EXISTS (SELECT 1 FROM state_types st WHERE st.name = i.s)
    FROM unnest(p_users, p_sessions, p_states, p_ts, p_contents) WITH ORDINALITY AS i(u, ss, s, t, c, ord)
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

CREATE OR REPLACE FUNCTION ck_days(p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, day date, state text, seconds numeric)
 LANGUAGE sql
 STABLE
AS $function$
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

CREATE OR REPLACE FUNCTION ck_delete_old_session_history(p_before timestamp with time zone, p_batch integer, OUT deleted integer, OUT passed integer)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_s_ts timestamptz; v_s_id bigint; v_m_ts timestamptz; v_m_id bigint;
  v_s_del integer; v_s_passed integer; v_m_del integer; v_m_passed integer;
BEGIN
  SELECT p.sessions_ts, p.sessions_id, p.manual_ts, p.manual_id INTO v_s_ts, v_s_id, v_m_ts, v_m_id
    FROM retention_progress p FOR UPDATE;

  WITH batch AS (
    SELECT c.user_id, c.session_id, c.ts, c.id, c.state FROM session_checkpoints c
     WHERE (c.ts, c.id) > (v_s_ts, v_s_id) AND c.ts < p_before
     ORDER BY c.ts, c.id LIMIT p_batch
  ), keep AS (
    SELECT DISTINCT ON (x.user_id, x.session_id) x.* FROM batch x ORDER BY x.user_id, x.session_id, x.ts DESC, x.id DESC
  ), gone AS (
    DELETE FROM session_checkpoints c USING keep k
     WHERE c.user_id = k.user_id AND c.session_id = k.session_id
       AND ((c.ts, c.id) < (k.ts, k.id) OR (c.id = k.id AND k.state = 'Offline'))
    RETURNING 1
  ), moved AS (
    UPDATE retention_progress p SET sessions_ts = l.ts, sessions_id = l.id
      FROM (SELECT x.ts, x.id FROM batch x ORDER BY x.ts DESC, x.id DESC LIMIT 1) l
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM batch)::integer INTO v_s_del, v_s_passed;

  WITH batch AS (
    SELECT m.user_id, m.set_at, m.id, m.state, m.until FROM manual_presence m
     WHERE (m.set_at, m.id) > (v_m_ts, v_m_id) AND m.set_at < p_before
     ORDER BY m.set_at, m.id LIMIT p_batch
  ), keep AS (
    SELECT DISTINCT ON (x.user_id) x.* FROM batch x ORDER BY x.user_id, x.set_at DESC, x.id DESC
  ), gone AS (
    DELETE FROM manual_presence m USING keep k
     WHERE m.user_id = k.user_id
       AND ((m.set_at, m.id) < (k.set_at, k.id)
            OR (m.id = k.id AND (k.state IS NULL OR k.until < p_before)))
    RETURNING 1
  ), moved AS (
    UPDATE retention_progress p SET manual_ts = l.set_at, manual_id = l.id
      FROM (SELECT x.set_at, x.id FROM batch x ORDER BY x.set_at DESC, x.id DESC LIMIT 1) l
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM batch)::integer INTO v_m_del, v_m_passed;
  deleted := v_s_del + v_m_del;
  passed := greatest(v_s_passed, v_m_passed);
END $function$;

CREATE OR REPLACE FUNCTION ck_end_session(p_user text, p_session text, p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_erase_user(p_user text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_event_frontier()
 RETURNS xid8
 LANGUAGE sql
 STABLE
AS $function$
  WITH s AS (SELECT pg_current_snapshot() AS snap),
  elsewhere AS (
    SELECT a.backend_xid::text::bigint AS xid32 FROM pg_stat_activity a
     WHERE a.backend_xid IS NOT NULL
       AND a.datid IS DISTINCT FROM (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  )
  SELECT coalesce(
    (SELECT min(x) FROM s, pg_snapshot_xip(s.snap) AS x
      WHERE (x::text::numeric % 4294967296)::bigint NOT IN (SELECT e.xid32 FROM elsewhere e)),
    (SELECT pg_snapshot_xmax(s.snap) FROM s))
$function$;

CREATE OR REPLACE FUNCTION ck_intervals(p_users text[], p_from timestamp with time zone, p_to timestamp with time zone, p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, state text, s timestamp with time zone, e timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_liveness(p_users text[], p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, state text, state_since timestamp with time zone, last_heartbeat timestamp with time zone, valid_until timestamp with time zone, session_id text, session_state text, session_heartbeat timestamp with time zone, session_active timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT us.user_id, us.current_state, us.state_since, us.last_heartbeat, ck_valid_until(us.user_id, p_timeout, p_idle),
         s.session_id, s.state, s.last_heartbeat, s.last_active
    FROM user_sessions us LEFT JOIN sessions s ON s.user_id = us.user_id
   WHERE us.user_id = ANY (p_users)
$function$;

CREATE OR REPLACE FUNCTION ck_lock_users(p_users text[], p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, at timestamp with time zone)
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
  SELECT DISTINCT u, 'Offline', p_now, p_now FROM unnest(p_users) AS u ORDER BY 1
  ON CONFLICT ON CONSTRAINT user_sessions_pkey DO NOTHING;
  PERFORM 1 FROM user_sessions s WHERE s.user_id = ANY (p_users) ORDER BY s.user_id FOR UPDATE;
  RETURN QUERY SELECT x.user_id, min(x.at) FROM ck_settle(p_users, p_now, p_timeout, p_idle) x GROUP BY x.user_id;
END $function$;

CREATE OR REPLACE FUNCTION ck_log_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_later boolean;
  v_unmarked boolean;
BEGIN
  SELECT bool_or(s.event_xid > pg_current_xact_id()), bool_or(s.event_xid IS DISTINCT FROM pg_current_xact_id())
    INTO v_later, v_unmarked
    FROM user_sessions s WHERE s.user_id IN (SELECT n.user_id FROM new_rows n);
  IF v_later THEN
    RAISE EXCEPTION 'a later transaction wrote events of the same user first; retry'
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF v_unmarked THEN
    UPDATE user_sessions s SET event_xid = pg_current_xact_id()
     WHERE s.user_id IN (SELECT n.user_id FROM new_rows n) AND s.event_xid IS DISTINCT FROM pg_current_xact_id();
  END IF;
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
END $function$;

CREATE OR REPLACE FUNCTION ck_ms(t timestamp with time zone)
 RETURNS double precision
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT round(extract(epoch FROM t) * 1000)::float8
$function$;

CREATE OR REPLACE FUNCTION ck_pending(p_users text[], p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, ts timestamp with time zone, state text, source text)
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_presence(p_states text[], p_since timestamp with time zone[], p_manual text)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE WHEN coalesce(cardinality(p_states), 0) = 0 THEN 'Offline'
              WHEN p_manual IS NOT NULL THEN p_manual
              ELSE (SELECT s.state FROM unnest(p_states, p_since) WITH ORDINALITY AS s(state, since, n)
                      LEFT JOIN state_types t ON t.name = s.state
                     ORDER BY coalesce(t.priority, 30) DESC, s.since DESC, s.n DESC LIMIT 1) END
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

CREATE OR REPLACE FUNCTION ck_prune_tokens(p_limit integer DEFAULT 50000)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
END $function$;

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

CREATE OR REPLACE FUNCTION ck_recompute(p_users text[], p_from timestamp with time zone[], p_now timestamp with time zone)
 RETURNS void
 LANGUAGE plpgsql
 SET work_mem TO '64MB'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_record_checkpoints(p_users text[], p_sessions text[], p_states text[], p_ts timestamp with time zone[], p_contents jsonb[], p_clients text[], p_active boolean[], p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(ord integer, status text, id bigint, state text, ts timestamp with time zone, content jsonb, received_at timestamp with time zone, previous_state text)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_revoke_token(p_jti text)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  WITH t AS (SELECT t.jti, t.expires_at FROM tokens t WHERE t.jti = p_jti AND t.expires_at > now() LIMIT 1),
  ins AS (INSERT INTO token_revocations (jti, expires_at) SELECT t.jti, t.expires_at FROM t ON CONFLICT (jti) DO NOTHING)
  SELECT EXISTS (SELECT 1 FROM t)
$function$;

CREATE OR REPLACE FUNCTION ck_session_at(p_state text, p_since timestamp with time zone, p_last_heartbeat timestamp with time zone, p_last_active timestamp with time zone, p_at timestamp with time zone, p_timeout interval, p_idle interval, OUT state text, OUT since timestamp with time zone)
 RETURNS record
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT CASE WHEN ck_session_expiry(p_last_heartbeat, p_timeout) <= p_at THEN NULL
              WHEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle) <= p_at THEN 'Away'
              ELSE p_state END,
         CASE WHEN ck_session_expiry(p_last_heartbeat, p_timeout) <= p_at THEN NULL
              WHEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle) <= p_at
                THEN ck_session_idle(p_state, p_last_heartbeat, p_last_active, p_timeout, p_idle)
              ELSE p_since END
$function$;

CREATE OR REPLACE FUNCTION ck_session_expiry(p_last_heartbeat timestamp with time zone, p_timeout interval)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$ SELECT p_last_heartbeat + p_timeout $function$;

CREATE OR REPLACE FUNCTION ck_session_heartbeat(p_users text[], p_sessions text[], p_ts timestamp with time zone[], p_active boolean[], p_clients text[], p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, session_id text, state text, state_since timestamp with time zone, last_heartbeat timestamp with time zone, valid_until timestamp with time zone, session_state text, session_heartbeat timestamp with time zone, session_active timestamp with time zone)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_session_heartbeat_alive(p_users text[], p_sessions text[], p_ms bigint[], p_active_ms bigint[], p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, session_id text)
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_session_heartbeat_write(p_users text[], p_sessions text[], p_ts timestamp with time zone[], p_active boolean[], p_clients text[], p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, session_id text, state text, state_since timestamp with time zone, last_heartbeat timestamp with time zone, valid_until timestamp with time zone, session_state text, session_heartbeat timestamp with time zone, session_active timestamp with time zone)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_session_idle(p_state text, p_last_heartbeat timestamp with time zone, p_last_active timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT CASE WHEN p_state = 'Online' AND p_idle > interval '0'
               AND p_last_active + p_idle < ck_session_expiry(p_last_heartbeat, p_timeout)
              THEN p_last_active + p_idle END
$function$;

CREATE OR REPLACE FUNCTION ck_set_manual(p_user text, p_state text, p_until timestamp with time zone, p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_from timestamptz;
BEGIN
  SELECT l.at INTO v_from FROM ck_lock_users(ARRAY[p_user], p_now, p_timeout, p_idle) l;
  INSERT INTO manual_presence (user_id, state, set_at, until) VALUES (p_user, p_state, p_now, p_until);
  UPDATE user_sessions u SET manual_state = p_state, manual_until = CASE WHEN p_state IS NULL THEN NULL ELSE p_until END
   WHERE u.user_id = p_user;
  PERFORM ck_recompute(ARRAY[p_user], ARRAY[least(coalesce(v_from, p_now), p_now)], p_now);
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

CREATE OR REPLACE FUNCTION ck_settle(p_users text[], p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, at timestamp with time zone)
 LANGUAGE plpgsql
 SET work_mem TO '64MB'
AS $function$
BEGIN
  IF p_idle > interval '0' THEN
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
  END IF;

  RETURN QUERY
  WITH gone AS (
    DELETE FROM sessions s WHERE s.user_id = ANY (p_users) AND ck_session_expiry(s.last_heartbeat, p_timeout) < p_now
    RETURNING s.user_id, s.session_id, s.last_heartbeat, ck_session_expiry(s.last_heartbeat, p_timeout) AS at
  ), logged AS (
    INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
    SELECT g.user_id, g.session_id, 'Offline', g.at, 'timeout', p_now FROM gone g ORDER BY g.at
    RETURNING 1
  ), seen AS (
    UPDATE user_sessions u SET last_heartbeat = greatest(u.last_heartbeat, x.hb),
                               event_xid = greatest(u.event_xid, pg_current_xact_id())
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
END $function$;

CREATE OR REPLACE FUNCTION ck_state_types_append_only()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION 'state types cannot be renamed or deleted' USING ERRCODE = 'restrict_violation';
END $function$;

CREATE OR REPLACE FUNCTION ck_status(p_users text[], p_pending timestamp with time zone[], p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(user_id text, state text, online boolean, state_since double precision, last_heartbeat double precision, sessions integer, manual_state text, manual_until double precision)
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_summaries(p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamp with time zone, p_timeout interval, p_idle interval)
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
        FROM ck_days(v_users, v_live_from, p_to, p_tz, p_day_start, p_now, p_timeout, p_idle) d
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

CREATE OR REPLACE FUNCTION ck_sweep_offline(p_timeout interval, p_now timestamp with time zone DEFAULT now(), p_limit integer DEFAULT 100000, p_idle interval DEFAULT '00:00:00'::interval)
 RETURNS integer
 LANGUAGE plpgsql
 SET work_mem TO '64MB'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION ck_user_hash(p_user text)
 RETURNS bytea
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT sha256(convert_to(p_user, 'UTF8'))
$function$;

CREATE OR REPLACE FUNCTION ck_user_sessions(p_user text, p_now timestamp with time zone, p_timeout interval, p_idle interval)
 RETURNS TABLE(session_id text, state text, state_since double precision, last_heartbeat double precision, last_active double precision, client text)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT s.session_id, x.state, ck_ms(x.since), ck_ms(s.last_heartbeat), ck_ms(s.last_active), s.client
    FROM sessions s CROSS JOIN LATERAL
         ck_session_at(s.state, s.state_since, s.last_heartbeat, s.last_active, p_now, p_timeout, p_idle) x
   WHERE s.user_id = p_user AND x.state IS NOT NULL
   ORDER BY s.session_id
$function$;

CREATE OR REPLACE FUNCTION ck_valid_until(p_user text, p_timeout interval, p_idle interval)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
  SELECT least((SELECT u.manual_until FROM user_sessions u WHERE u.user_id = p_user),
               (SELECT min(least(ck_session_expiry(s.last_heartbeat, p_timeout),
                                 ck_session_idle(s.state, s.last_heartbeat, s.last_active, p_timeout, p_idle)))
                  FROM sessions s WHERE s.user_id = p_user))
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_claim(p_limit integer, p_lease interval, p_per_webhook integer)
 RETURNS TABLE(id bigint, webhook_id bigint, url text, secrets text[], event jsonb, attempts integer)
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
       WHERE e.disabled_at IS NULL
       ORDER BY c.next_attempt_at, c.id
       LIMIT p_limit)
       AND h.status = 'pending' AND h.next_attempt_at <= now() AND (h.locked_until IS NULL OR h.locked_until <= now())
     FOR UPDATE SKIP LOCKED)
  RETURNING d.id, d.webhook_id, w.url, ck_webhook_secrets(w), d.event, d.attempts
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_finish(p_ids bigint[], p_attempts integer[], p_ok boolean[], p_codes integer[], p_errors text[], p_base_ms integer, p_cap interval DEFAULT '01:00:00'::interval, p_max_age interval DEFAULT '24:00:00'::interval)
 RETURNS double precision
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_rotate(p_id bigint, p_secret text, p_overlap interval)
 RETURNS TABLE(secret text, previous_secret_expires_at timestamp with time zone)
 LANGUAGE sql
AS $function$
  UPDATE webhooks w SET previous_secret = w.secret, previous_secret_expires_at = now() + p_overlap, secret = p_secret
   WHERE w.id = p_id
  RETURNING w.secret, w.previous_secret_expires_at
$function$;

CREATE OR REPLACE FUNCTION ck_webhook_secrets(w webhooks)
 RETURNS text[]
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE WHEN w.previous_secret_expires_at > now() THEN ARRAY[w.secret, w.previous_secret]
              ELSE ARRAY[w.secret] END
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
END $function$;
