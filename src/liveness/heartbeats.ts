import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/** A user's liveness as a heartbeat leaves it; times in epoch ms. */
export interface Liveness {
  user_id: string;
  state: string;
  state_since: number;
  last_heartbeat: number;
}

const interval = (sec: number) => `${sec} seconds`;

/** One set-based write for any number of users (newest time per user wins); writes their state changes. */
export async function writeHeartbeats(db: Queryable, users: string[], times: number[], timeoutSec: number): Promise<Liveness[]> {
  const { rows } = await db.query<Liveness>(
    `SELECT user_id, state, ck_ms(state_since) AS state_since, ck_ms(last_heartbeat) AS last_heartbeat
       FROM ck_heartbeat($1::text[], $2::timestamptz[], $3::interval)`,
    [users, times.map(iso), interval(timeoutSec)],
  );
  return rows;
}

/**
 * The flush: one lean statement for users still alive (ck_heartbeat_alive), then ck_heartbeat for the
 * few it skipped (unknown, Offline, silent past the timeout), so their state changes are written.
 */
export async function flushHeartbeats(db: Queryable, users: string[], times: number[], timeoutSec: number): Promise<Liveness[]> {
  const { rows } = await db.query<Liveness>(
    `SELECT user_id, state, state_since, last_heartbeat FROM ck_heartbeat_alive($1::text[], $2::bigint[], $3::interval)`,
    [users, times, interval(timeoutSec)],
  );
  if (rows.length === users.length) return rows;
  const done = new Set(rows.map((r) => r.user_id));
  const rest = users.flatMap((u, i) => (done.has(u) ? [] : [i]));
  if (rest.length === 0) return rows; // duplicates in the input
  return rows.concat(await writeHeartbeats(db, rest.map((i) => users[i]!), rest.map((i) => times[i]!), timeoutSec));
}

/** Users' liveness as stored (no lock, no write): the cold-cache lookup. Unknown users are left out. */
export async function readLiveness(db: Queryable, users: string[]): Promise<Liveness[]> {
  const { rows } = await db.query<Liveness>(
    `SELECT user_id, current_state AS state, ck_ms(state_since) AS state_since, ck_ms(last_heartbeat) AS last_heartbeat
       FROM user_sessions WHERE user_id = ANY ($1::text[])`,
    [users],
  );
  return rows;
}

/** Writes the Offline of every user whose heartbeat ran out by `nowMs` (ck_sweep_offline). */
export async function sweepOffline(db: Queryable, timeoutSec: number, nowMs: number, limit = 100_000): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ck_sweep_offline($1::interval, $2, $3) AS n`, [
    interval(timeoutSec), iso(nowMs), limit,
  ]);
  return rows[0]!.n;
}
