-- Retention (CK_RETENTION_DAYS, docs/retention.md): checkpoints older than the window are deleted in
-- bounded batches. Every user keeps the checkpoint in force when the window opens, so their current
-- state and their whole timeline inside the window stay exact; per-day summaries are kept.

-- The pass walks checkpoints in time order from where it stopped.
CREATE INDEX checkpoints_ts ON checkpoints (ts, id);

-- Where the pass stopped: every checkpoint up to (done_ts, done_id) has had its user's older
-- checkpoints deleted. One row; its lock also serializes concurrent passes.
CREATE TABLE retention_progress (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  done_ts   timestamptz NOT NULL DEFAULT '-infinity',
  done_id   bigint NOT NULL DEFAULT 0
);
INSERT INTO retention_progress DEFAULT VALUES;

-- One batch: passes the next p_batch checkpoints older than p_before in time order and, for each of their
-- users, deletes what precedes the newest of them. So a checkpoint goes only once a newer one of its user
-- is itself older than p_before: the one in force at p_before (and so each user's latest) always stays.
-- Deletes at most p_batch rows (plus any a missed sweep wrote behind the pass) and costs in proportion to
-- p_batch, however many users sit idle with one old checkpoint. `passed` < p_batch means caught up (a
-- batch of users' first checkpoints passes p_batch rows and deletes none).
-- Runs with ck.retention = on (like SET LOCAL) so the summary-invalidation trigger keeps the summaries.
CREATE FUNCTION ck_delete_old_checkpoints(
  p_before timestamptz, p_batch integer, OUT deleted integer, OUT passed integer
) LANGUAGE plpgsql AS $$
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
END $$;

-- job_runs is an operator's log: a week is kept whatever the checkpoint window.
CREATE INDEX job_runs_started ON job_runs (started_at);

CREATE FUNCTION ck_prune_job_runs(p_before timestamptz, p_batch integer) RETURNS integer
LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM job_runs j WHERE j.id IN (
      SELECT x.id FROM job_runs x WHERE x.started_at < p_before ORDER BY x.started_at LIMIT p_batch)
    RETURNING 1
  )
  SELECT count(*)::integer FROM gone
$$;
