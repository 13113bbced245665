-- State-change events and the scheduled-job log.

-- Every new checkpoint is an event. The NOTIFY carries ids only (payloads are capped at 8000 bytes);
-- listeners read the rows. One notification per statement, chunked, on a channel per schema so schemas
-- sharing a database do not hear each other. Delivered at commit, so listeners never see rolled-back rows.
CREATE FUNCTION ck_notify_checkpoints() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_ids text;
BEGIN
  FOR v_ids IN
    SELECT string_agg(id::text, ',' ORDER BY id) FROM (
      SELECT id, (row_number() OVER (ORDER BY id) - 1) / 500 AS chunk FROM new_rows
    ) x GROUP BY chunk
  LOOP
    PERFORM pg_notify('ck_events_' || current_schema(), v_ids);
  END LOOP;
  RETURN NULL;
END $$;

CREATE TRIGGER checkpoints_notify AFTER INSERT ON checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_notify_checkpoints();

-- Events by id with the state they replaced (the user's previous checkpoint in time order).
CREATE FUNCTION ck_events(p_ids bigint[]) RETURNS TABLE (
  id bigint, user_id text, state text, previous_state text, ts timestamptz, source text, content jsonb
) LANGUAGE sql STABLE AS $$
  SELECT c.id, c.user_id, c.state,
         (SELECT p.state FROM checkpoints p WHERE p.user_id = c.user_id AND (p.ts, p.id) < (c.ts, c.id)
           ORDER BY p.ts DESC, p.id DESC LIMIT 1),
         c.ts, c.source, c.content
    FROM checkpoints c WHERE c.id = ANY(p_ids) ORDER BY c.id
$$;

-- One row per run of a scheduled job (in-app scheduler), for operators and for the fault tests.
CREATE TABLE job_runs (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job         text NOT NULL,
  instance    text NOT NULL,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  result      jsonb
);
CREATE INDEX job_runs_job_started ON job_runs (job, started_at);
