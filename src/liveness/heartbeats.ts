import type { Queryable } from '../db/types.js';
import { intervals, iso, type Timeouts } from '../time.js';

/**
 * The session a write names when it names none: clients from before sessions are one session each.
 */
export const DEFAULT_SESSION = 'default';

/** A user's liveness as a heartbeat leaves it; times in epoch ms. */
export interface Liveness {
  user_id: string;
  state: string;
  state_since: number;
  last_heartbeat: number;
}

/** One heartbeat: of a user's session, at `at`, active (input) or not, from a client. */
export interface Beat {
  user: string;
  session: string;
  at: number;
  active: boolean;
  client?: string;
}

/**
 * A user as stored and one of their sessions (undefined fields: the user has no alive session), with
 * until when the stored state holds unless someone writes (null: no timed change ahead).
 */
export interface StoredLiveness extends Liveness {
  valid_until: number | null;
  session_id: string | null;
  session_state: string | null;
  session_heartbeat: number | null;
  session_active: number | null;
}

const LIVENESS_COLUMNS = `user_id, state, ck_ms(state_since) AS state_since, ck_ms(last_heartbeat) AS last_heartbeat,
  ck_ms(valid_until) AS valid_until, session_id, session_state, ck_ms(session_heartbeat) AS session_heartbeat,
  ck_ms(session_active) AS session_active`;

/** Heartbeats that may change state, written in one transaction (ck_session_heartbeat); one row per (user, session). */
export async function writeHeartbeats(db: Queryable, beats: Beat[], t: Timeouts): Promise<StoredLiveness[]> {
  const { rows } = await db.query<StoredLiveness>(
    `SELECT ${LIVENESS_COLUMNS} FROM ck_session_heartbeat($1::text[], $2::text[], $3::timestamptz[], $4::boolean[], $5::text[], $6::interval, $7::interval)`,
    [beats.map((b) => b.user), beats.map((b) => b.session), beats.map((b) => iso(b.at)), beats.map((b) => b.active),
      beats.map((b) => b.client ?? null), ...intervals(t)],
  );
  return rows;
}

/** Users as stored with their sessions (ck_liveness): the cold-cache lookup, no write. */
export async function readLiveness(db: Queryable, users: string[], t: Timeouts): Promise<StoredLiveness[]> {
  const { rows } = await db.query<StoredLiveness>(
    `SELECT ${LIVENESS_COLUMNS} FROM ck_liveness($1::text[], $2::interval, $3::interval)`, [users, ...intervals(t)],
  );
  return rows;
}

/** A buffered heartbeat of one session: newest time, and newest active time (0: none). */
export interface Buffered {
  user: string;
  session: string;
  at: number;
  activeAt: number;
}

/**
 * The flush: one lean statement for sessions still alive and not due for anything
 * (ck_session_heartbeat_alive), then ck_session_heartbeat for the few it skipped (unknown, expired, idle
 * due), so their state changes are written. Returns the rows the second statement wrote.
 */
export async function flushHeartbeats(db: Queryable, beats: Buffered[], t: Timeouts): Promise<StoredLiveness[]> {
  const { rows } = await db.query<{ user_id: string; session_id: string }>(
    `SELECT user_id, session_id FROM ck_session_heartbeat_alive($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::interval, $6::interval)`,
    [beats.map((b) => b.user), beats.map((b) => b.session), beats.map((b) => b.at), beats.map((b) => b.activeAt || null), ...intervals(t)],
  );
  if (rows.length === beats.length) return [];
  const done = new Set(rows.map((r) => `${r.user_id}\u0000${r.session_id}`));
  const rest = beats.filter((b) => !done.has(`${b.user}\u0000${b.session}`));
  if (rest.length === 0) return []; // duplicates in the input
  // A buffered heartbeat that is inactive is written at its own time; an active one also moves last_active.
  return writeHeartbeats(db, rest.map((b) => ({ user: b.user, session: b.session, at: b.at, active: b.activeAt > 0 })), t);
}

/** Writes every idle decay, expiry and manual presence end due by `nowMs` (ck_sweep_offline); returns users settled. */
export async function sweepOffline(db: Queryable, t: Timeouts, nowMs: number, limit = 100_000): Promise<number> {
  const [timeout, idle] = intervals(t);
  const { rows } = await db.query<{ n: number }>(`SELECT ck_sweep_offline($1::interval, $2, $3, $4::interval) AS n`, [timeout, iso(nowMs), limit, idle]);
  return rows[0]!.n;
}
