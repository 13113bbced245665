import type { Db } from '../src/db/types.js';

/** Commit counters of the bench's PostgreSQL, read while a run is under way. */
export interface CommitWindow {
  sec: number;
  /** pg_stat_database.xact_commit of the database: every committed transaction, read-only ones too. */
  commits: number;
  /** Transaction ids handed out (cluster-wide): the transactions that wrote something. */
  writes: number;
  /** pg_stat_wal.wal_sync (cluster-wide): WAL flushes to disk. */
  walSyncs: number;
  /** Checkpoint rows (the users' timelines) the schema gained. */
  rows: number;
  /** Session checkpoint rows (the sessions' own histories) the schema gained. */
  sessionRows: number;
}

interface Reading {
  at: number;
  commits: number;
  xid: number;
  syncs: number;
  rows: number;
  sessionRows: number;
}

async function read(db: Db): Promise<Reading> {
  const { rows } = await db.query<{ commits: string; xid: string; syncs: string; rows: string; session_rows: string }>(
    `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::text AS commits,
            pg_snapshot_xmax(pg_current_snapshot())::text AS xid,
            (SELECT wal_sync FROM pg_stat_wal)::text AS syncs,
            (SELECT count(*) FROM checkpoints)::text AS rows,
            (SELECT count(*) FROM session_checkpoints)::text AS session_rows`);
  const r = rows[0]!;
  return { at: performance.now(), commits: Number(r.commits), xid: Number(r.xid), syncs: Number(r.syncs), rows: Number(r.rows), sessionRows: Number(r.session_rows) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Reads the counters twice inside a run of `durationSec` that starts now: a second in and a second
 * before its end. Backends publish xact_commit and wal_sync at most once a second and, once idle, up to
 * 10 s late, so readings before and after a run would miss or gain commits; inside a steady run both
 * readings lag alike.
 */
export async function commitWindow(db: Db, durationSec: number): Promise<CommitWindow> {
  const start = performance.now();
  const lead = Math.min(1, durationSec / 4) * 1000;
  await sleep(lead);
  const a = await read(db);
  await sleep(start + durationSec * 1000 - lead - performance.now());
  const b = await read(db);
  return {
    sec: (b.at - a.at) / 1000,
    commits: b.commits - a.commits,
    writes: b.xid - a.xid,
    walSyncs: b.syncs - a.syncs,
    rows: b.rows - a.rows,
    sessionRows: b.sessionRows - a.sessionRows,
  };
}

/** Several windows as one (sums). */
export function sumWindows(ws: CommitWindow[]): CommitWindow {
  const sum = (f: (w: CommitWindow) => number) => ws.reduce((a, w) => a + f(w), 0);
  return { sec: sum((w) => w.sec), commits: sum((w) => w.commits), writes: sum((w) => w.writes), walSyncs: sum((w) => w.walSyncs), rows: sum((w) => w.rows), sessionRows: sum((w) => w.sessionRows) };
}
