import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/** A user's current state as the API returns it. */
export interface Status {
  user_id: string;
  state: string;
  online: boolean;
  state_since: string;
  last_heartbeat: string;
}

export interface HeartbeatRow {
  user_id: string;
  state: string;
  state_since: number;
  last_heartbeat: number;
  changed: boolean;
}

const interval = (sec: number) => `${sec} seconds`;

/** One set-based write for any number of users (newest time per user wins). */
export async function writeHeartbeats(db: Queryable, users: string[], times: number[], timeoutSec: number) {
  const { rows } = await db.query<HeartbeatRow>(
    `SELECT user_id, state, ck_ms(state_since) AS state_since, ck_ms(last_heartbeat) AS last_heartbeat, changed
       FROM ck_heartbeat($1::text[], $2::timestamptz[], $3::interval)`,
    [users, times.map(iso), interval(timeoutSec)],
  );
  return rows;
}

/**
 * The flush: one lean statement for users still alive (ck_heartbeat_alive), then ck_heartbeat for the
 * few it skipped (unknown, Offline, silent past the timeout), so their state changes are written.
 */
export async function flushHeartbeats(db: Queryable, users: string[], times: number[], timeoutSec: number) {
  const { rows } = await db.query<HeartbeatRow>(
    `SELECT user_id, state, state_since, last_heartbeat, false AS changed
       FROM ck_heartbeat_alive($1::text[], $2::bigint[], $3::interval)`,
    [users, times, interval(timeoutSec)],
  );
  if (rows.length === users.length) return rows;
  const done = new Set(rows.map((r) => r.user_id));
  const rest = users.flatMap((u, i) => (done.has(u) ? [] : [i]));
  if (rest.length === 0) return rows; // duplicates in the input
  return rows.concat(await writeHeartbeats(db, rest.map((i) => users[i]!), rest.map((i) => times[i]!), timeoutSec));
}

export async function sweepOffline(db: Queryable, timeoutSec: number, nowMs: number, limit = 100_000): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ck_sweep_offline($1::interval, $2, $3) AS n`, [
    interval(timeoutSec),
    iso(nowMs),
    limit,
  ]);
  return rows[0]!.n;
}

interface SessionRow {
  user_id: string;
  current_state: string;
  online: boolean;
  state_since: number;
  last_heartbeat: number;
}

/**
 * Exact on read: a user silent past the timeout is Offline since last_heartbeat + timeout even before
 * the sweep wrote it.
 */
export function toStatus(r: SessionRow, nowMs: number, timeoutSec: number): Status {
  const expiry = r.last_heartbeat + timeoutSec * 1000;
  const expired = r.current_state !== 'Offline' && expiry < nowMs;
  return {
    user_id: r.user_id,
    state: expired ? 'Offline' : r.current_state,
    online: expired ? false : r.online,
    state_since: iso(expired ? expiry : r.state_since),
    last_heartbeat: iso(r.last_heartbeat),
  };
}

const SESSION_COLUMNS = `s.user_id, s.current_state, t.online, ck_ms(s.state_since) AS state_since,
  ck_ms(s.last_heartbeat) AS last_heartbeat`;

export async function getSessions(db: Queryable, users: string[]): Promise<SessionRow[]> {
  const { rows } = await db.query<SessionRow>(
    `SELECT ${SESSION_COLUMNS} FROM user_sessions s JOIN state_types t ON t.name = s.current_state
      WHERE s.user_id = ANY($1::text[])`,
    [users],
  );
  return rows;
}

/**
 * A page of users whose effective state is `state`, ordered by user_id after `cursor`.
 * Offline includes users whose heartbeat expired; other states exclude them.
 */
export async function sessionsInState(
  db: Queryable, state: string, after: string | undefined, limit: number, nowMs: number, timeoutSec: number,
): Promise<SessionRow[]> {
  const expiredBefore = iso(nowMs - timeoutSec * 1000);
  const where = state === 'Offline'
    ? `(s.current_state = 'Offline' OR s.last_heartbeat < $4::timestamptz)`
    : `s.current_state = $1 AND s.last_heartbeat >= $4::timestamptz`;
  const { rows } = await db.query<SessionRow>(
    `SELECT ${SESSION_COLUMNS} FROM user_sessions s JOIN state_types t ON t.name = s.current_state
      WHERE ${where} AND ($2::text IS NULL OR s.user_id > $2) AND $1::text IS NOT NULL
      ORDER BY s.user_id LIMIT $3`,
    [state, after ?? null, limit, expiredBefore],
  );
  return rows;
}
