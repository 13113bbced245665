-- The event frontier (000014) was the oldest transaction running anywhere on the server: a long write in
-- another database (a migration, a batch job, a benchmark) held every stream back until it ended. A
-- transaction of another database cannot write this one's events, so it no longer counts, when the
-- server shows which database a running transaction belongs to (pg_stat_activity; roles that may not see
-- other sessions' details count every transaction, as before). A transaction that ended between the
-- snapshot and the look at pg_stat_activity counts: this round's frontier stays below it.
CREATE OR REPLACE FUNCTION ck_event_frontier() RETURNS xid8 LANGUAGE sql STABLE AS $$
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
$$;
