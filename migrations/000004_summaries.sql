-- Time accounting: state intervals, exact local-day splitting, and pre-aggregated per-day totals that
-- are invalidated inside every writer's transaction and advanced by an idempotent job (docs/time-model.md).

-- Per-user, per-local-day totals in the user's timezone, days starting at 00:00.
CREATE TABLE state_summaries (
  user_id text NOT NULL,
  day     date NOT NULL,
  state   text NOT NULL,
  seconds numeric(14, 3) NOT NULL,
  PRIMARY KEY (user_id, day, state)
);

-- state_summaries rows of a user are exact for the local days (in tz) before valid_until's date.
-- due_at: when the aggregation job next has a complete day to add for this user.
CREATE TABLE summary_progress (
  user_id     text PRIMARY KEY,
  tz          text NOT NULL,
  valid_until timestamptz NOT NULL,
  due_at      timestamptz NOT NULL
);
CREATE INDEX summary_progress_due ON summary_progress (due_at);

-- Any checkpoint written or removed at ts invalidates its user's days from ts on. Statement-level, so a
-- sweep of 100k users costs one set-based upsert. Retention deletes (ck.retention = on) keep summaries.
CREATE FUNCTION ck_summaries_invalidate() RETURNS trigger LANGUAGE plpgsql AS $$
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
END $$;

CREATE TRIGGER checkpoints_summaries_ins AFTER INSERT ON checkpoints
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_summaries_invalidate();
CREATE TRIGGER checkpoints_summaries_del AFTER DELETE ON checkpoints
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ck_summaries_invalidate();

-- The users' state intervals clipped to [p_from, p_to) and to p_now, with LEAD() giving each
-- checkpoint's end. The last interval is open: it runs to p_now, or, if the heartbeat ran out first, to
-- last_heartbeat + timeout followed by Offline (exact even before the sweep wrote it). Time before a
-- user's first checkpoint is not counted.
CREATE FUNCTION ck_intervals(p_users text[], p_from timestamptz, p_to timestamptz, p_now timestamptz, p_timeout interval)
RETURNS TABLE (user_id text, state text, s timestamptz, e timestamptz)
LANGUAGE sql STABLE AS $$
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
           CASE WHEN iv.nxt IS NULL AND iv.state <> 'Offline' AND ss.last_heartbeat + p_timeout < p_now
                THEN greatest(ss.last_heartbeat + p_timeout, iv.s) END AS expired_at
      FROM iv LEFT JOIN user_sessions ss ON ss.user_id = iv.user_id
  ), a AS (
    SELECT ends.user_id, ends.state, ends.s, coalesce(ends.nxt, ends.expired_at, p_now) AS e FROM ends
    UNION ALL
    SELECT ends.user_id, 'Offline', ends.expired_at, p_now FROM ends WHERE ends.expired_at IS NOT NULL
  )
  SELECT a.user_id, a.state, greatest(a.s, p_from), least(a.e, p_to, p_now) FROM a
   WHERE least(a.e, p_to, p_now) > greatest(a.s, p_from)
$$;

-- Seconds per user, local day and state for local dates [p_from, p_to] in p_tz, days starting at
-- p_day_start. Every interval is split at the local day boundaries, so DST days have 23 or 25 hours.
CREATE FUNCTION ck_days(
  p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamptz, p_timeout interval
) RETURNS TABLE (user_id text, day date, state text, seconds numeric)
LANGUAGE sql STABLE AS $$
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
$$;

-- Summaries as the API reads them: stored rows where they are known exact (same zone, day start
-- 00:00, day before valid_until), computed from checkpoints for everything else (today, late data,
-- other zones). Never stale.
CREATE FUNCTION ck_summaries(
  p_users text[], p_from date, p_to date, p_tz text, p_day_start interval, p_now timestamptz, p_timeout interval
) RETURNS TABLE (user_id text, day date, state text, seconds float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_users text[];
  v_upto date[];
  v_live_from date;
BEGIN
  SELECT array_agg(u.u), array_agg(
           CASE WHEN p_day_start = interval '0' AND p.tz = p_tz THEN (p.valid_until AT TIME ZONE p_tz)::date
                ELSE p_from END)
    INTO v_users, v_upto
    FROM unnest(p_users) AS u(u) LEFT JOIN summary_progress p ON p.user_id = u.u;
  v_live_from := greatest(p_from, (SELECT min(x) FROM unnest(v_upto) AS x));
  RETURN QUERY
    SELECT s.user_id, s.day, s.state, s.seconds::float8
      FROM state_summaries s JOIN unnest(v_users, v_upto) AS c(uid, upto) ON s.user_id = c.uid
     WHERE s.day >= p_from AND s.day <= p_to AND s.day < c.upto;
  IF v_live_from <= p_to THEN
    RETURN QUERY
      SELECT d.user_id, d.day, d.state, d.seconds::float8
        FROM ck_days(v_users, v_live_from, p_to, p_tz, p_day_start, p_now, p_timeout) d
        JOIN unnest(v_users, v_upto) AS c(uid, upto) ON d.user_id = c.uid
       WHERE d.day >= c.upto;
  END IF;
END $$;

-- The aggregation job: stores every complete local day not yet stored (or invalidated) for up to
-- p_batch due users. Compare-and-set by row lock: users being written are skipped (SKIP LOCKED) and
-- picked up next run; the computation runs in statements that start after the locks were taken, so a
-- writer's invalidation is never lost. Running it twice changes nothing.
CREATE FUNCTION ck_aggregate_summaries(
  p_now timestamptz DEFAULT now(), p_timeout interval DEFAULT '60 seconds', p_batch integer DEFAULT 1000
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
END $$;

-- A user's timezone; stored summaries in the old zone are dropped and recomputed from the checkpoints.
CREATE FUNCTION ck_set_timezone(p_user text, p_tz text) RETURNS void LANGUAGE plpgsql AS $$
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
END $$;
