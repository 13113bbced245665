-- Retention at scale (docs/retention.md): a retention pass over tens of millions of checkpoints on
-- PostgreSQL, with the per-user timeline query measured before and after, table and index sizes, and the
-- alternatives it was chosen over. Sets up and drops its own schema. Heavy: run it once, on an idle box.
--
--   psql postgres://postgres@127.0.0.1:5432/test -v users=100000 -v per_user=150 -f bench/retention.sql
--
-- Data: :users users with :per_user checkpoints each, spread over 90 days, heap in time order (as ingest
-- appends it). The pass keeps 60 days, so about a third of the rows go.
\set ON_ERROR_STOP on
\pset pager off
\if :{?users} \else \set users 100000 \endif
\if :{?per_user} \else \set per_user 150 \endif

DROP SCHEMA IF EXISTS ck_bench_retention CASCADE;
CREATE SCHEMA ck_bench_retention;
SET search_path = ck_bench_retention, public;
SET client_min_messages = warning;
\i migrations/000001_schema.sql
\i migrations/000002_liveness.sql
\i migrations/000003_events.sql
\i migrations/000004_summaries.sql
\i migrations/000005_webhooks.sql
\i migrations/000006_retention.sql
RESET client_min_messages;

CREATE TABLE bench_anchor AS SELECT date_trunc('second', now()) AS now;
SELECT now - interval '60 days' AS cutoff, 'user' || (:users / 2) AS probe FROM bench_anchor \gset
CREATE TABLE bench_log (step text, value numeric, unit text, at timestamptz DEFAULT clock_timestamp());

\echo '== load (indexes built afterwards, triggers off)'
\timing on
DROP INDEX checkpoints_user_ts, checkpoints_ts;
SET session_replication_role = replica;
INSERT INTO checkpoints (user_id, state, ts, content, source, received_at)
SELECT 'user' || u, (ARRAY['Online', 'Busy', 'Away', 'Offline'])[1 + k % 4], ts,
       CASE WHEN k % 5 = 0 THEN jsonb_build_object('ticket', k) END, 'client', ts
  FROM (SELECT u, k, a.now - interval '90 days' + (k + random()) * (interval '90 days' / :per_user) AS ts
          FROM bench_anchor a, generate_series(1, :users) u, generate_series(0, :per_user - 1) k) x
 ORDER BY ts;
INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
SELECT DISTINCT ON (user_id) user_id, state, ts, ts FROM checkpoints ORDER BY user_id, ts DESC;
RESET session_replication_role;
CREATE INDEX checkpoints_user_ts ON checkpoints (user_id, ts, id);
VACUUM ANALYZE checkpoints;
VACUUM ANALYZE user_sessions;
\timing off

\echo '== a retention batch WITHOUT an index on ts: the next 10,000 rows in time order'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT c.user_id, c.ts, c.id FROM checkpoints c
 WHERE (c.ts, c.id) > ('-infinity'::timestamptz, 0) AND c.ts < :'cutoff'
 ORDER BY c.ts, c.id LIMIT 10000;

\timing on
CREATE INDEX checkpoints_ts ON checkpoints (ts, id);
\timing off
ANALYZE checkpoints;
\echo '== the same with checkpoints_ts'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT c.user_id, c.ts, c.id FROM checkpoints c
 WHERE (c.ts, c.id) > ('-infinity'::timestamptz, 0) AND c.ts < :'cutoff'
 ORDER BY c.ts, c.id LIMIT 10000;

\echo '== sizes before'
SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size, pg_relation_size(oid) AS bytes
  FROM pg_class WHERE relnamespace = 'ck_bench_retention'::regnamespace
   AND relname IN ('checkpoints', 'checkpoints_pkey', 'checkpoints_user_ts', 'checkpoints_ts') ORDER BY relname;
SELECT count(*) AS checkpoints FROM checkpoints;

-- The timeline query of src/checkpoints/timeline.ts (first page of 100) for 500 users, from the start of
-- the 30 days before now (the usual "recent" view) and from the beginning of their history.
CREATE PROCEDURE bench_timeline(p_label text, p_from_days integer) LANGUAGE plpgsql AS $$
DECLARE
  v_t0 timestamptz := clock_timestamp();
  v_from timestamptz;
  v_u text;
BEGIN
  SELECT CASE WHEN p_from_days IS NULL THEN '-infinity' ELSE a.now - p_from_days * interval '1 day' END INTO v_from
    FROM bench_anchor a;
  FOR v_u IN SELECT 'user' || (1 + (i * 7919) % (SELECT count(*) FROM user_sessions)) FROM generate_series(1, 500) i LOOP
    PERFORM * FROM (
      WITH start AS (
        SELECT coalesce((SELECT c.ts FROM checkpoints c WHERE c.user_id = v_u AND c.ts <= v_from
                          ORDER BY c.ts DESC, c.id DESC LIMIT 1), v_from) AS ts
      ), page AS (
        SELECT c.id, c.state, c.ts, c.content, c.source, c.received_at FROM checkpoints c, start
         WHERE c.user_id = v_u AND c.ts >= start.ts ORDER BY c.ts, c.id LIMIT 101
      )
      SELECT id::text, state, ck_ms(ts), ck_ms(lead(ts) OVER w), content, source, ck_ms(received_at)
        FROM page WINDOW w AS (ORDER BY page.ts, page.id)) q;
  END LOOP;
  INSERT INTO bench_log (step, value, unit)
  VALUES (p_label, round(extract(epoch FROM clock_timestamp() - v_t0) * 1000 / 500, 3), 'ms per timeline page');
END $$;

CALL bench_timeline('timeline, last 30 days, before, first run', 30);
CALL bench_timeline('timeline, last 30 days, before', 30);
CALL bench_timeline('timeline, whole history, before', NULL);
\echo '== timeline plan before (one user, whole history)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT c.id, c.ts FROM checkpoints c WHERE c.user_id = :'probe' AND c.ts >= '-infinity' ORDER BY c.ts, c.id LIMIT 101;

\echo '== the retention pass: batches of 10,000, each its own transaction, until caught up'
CREATE TEMP TABLE bench_batches (pass text, i integer, deleted integer, ms numeric);
CREATE PROCEDURE bench_pass(p_label text, p_before timestamptz) LANGUAGE plpgsql AS $$
DECLARE
  v_t0 timestamptz := clock_timestamp();
  v_t timestamptz;
  v_n integer;
  v_passed integer;
  v_i integer := 0;
BEGIN
  LOOP
    v_t := clock_timestamp();
    SELECT deleted, passed INTO v_n, v_passed FROM ck_delete_old_checkpoints(p_before, 10000);
    v_i := v_i + 1;
    INSERT INTO bench_batches VALUES (p_label, v_i, v_n, extract(epoch FROM clock_timestamp() - v_t) * 1000);
    COMMIT;
    EXIT WHEN v_passed < 10000;
  END LOOP;
  INSERT INTO bench_log (step, value, unit)
  VALUES (p_label, round(extract(epoch FROM clock_timestamp() - v_t0)::numeric, 2), 's wall');
END $$;
\timing on
CALL bench_pass('pass: keep 60 of 90 days', :'cutoff');
\timing off
SELECT pass, count(*) AS statements, sum(deleted) AS deleted, round(sum(ms) / 1000, 1) AS seconds,
       round(sum(deleted) / (sum(ms) / 1000)) AS rows_per_second,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95_ms, round(max(ms), 1) AS max_ms
  FROM bench_batches GROUP BY pass;
SELECT count(*) AS checkpoints_left FROM checkpoints;

\echo '== a caught-up run (nothing to delete)'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM ck_delete_old_checkpoints(:'cutoff', 10000);
\echo '== the stateless alternative when caught up: rescans the boundary row kept for every user'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT c.id FROM checkpoints c
 WHERE c.ts < :'cutoff'
   AND EXISTS (SELECT 1 FROM checkpoints l WHERE l.user_id = c.user_id AND (l.ts, l.id) > (c.ts, c.id)
                 AND l.ts < :'cutoff')
 ORDER BY c.ts, c.id LIMIT 10000;

\echo '== after the pass, before VACUUM'
SELECT pg_stat_force_next_flush();
SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relid = 'checkpoints'::regclass;
CALL bench_timeline('timeline, last 30 days, after pass, before vacuum', 30);
CALL bench_timeline('timeline, whole history, after pass, before vacuum', NULL);
\timing on
VACUUM checkpoints;
\timing off
ANALYZE checkpoints;
\echo '== after VACUUM'
CALL bench_timeline('timeline, last 30 days, after vacuum', 30);
CALL bench_timeline('timeline, whole history, after vacuum', NULL);
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT c.id, c.ts FROM checkpoints c WHERE c.user_id = :'probe' AND c.ts >= '-infinity' ORDER BY c.ts, c.id LIMIT 101;
SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size, pg_relation_size(oid) AS bytes,
       pg_size_pretty(pg_total_relation_size(oid)) AS total
  FROM pg_class WHERE relnamespace = 'ck_bench_retention'::regnamespace
   AND relname IN ('checkpoints', 'checkpoints_pkey', 'checkpoints_user_ts', 'checkpoints_ts') ORDER BY relname;

\echo '== steady state: the next day falls out of the window'
CALL bench_pass('pass: one more day', (:'cutoff'::timestamptz + interval '1 day'));
SELECT pass, count(*) AS statements, sum(deleted) AS deleted, round(sum(ms) / 1000, 2) AS seconds,
       round(sum(deleted) / (sum(ms) / 1000)) AS rows_per_second, round(max(ms), 1) AS max_ms
  FROM bench_batches GROUP BY pass ORDER BY pass;

\echo '== timings'
SELECT step, value, unit FROM bench_log ORDER BY at;

SET client_min_messages = warning;
DROP SCHEMA ck_bench_retention CASCADE;
