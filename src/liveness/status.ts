import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';
import type { Liveness } from './heartbeats.js';

/** A user's current state as the API reports it (times in epoch ms; the HTTP layer formats them). */
export interface Status extends Liveness {
  online: boolean;
}

/**
 * Users' status, exact at `nowMs` (ck_status: Offline from last_heartbeat + timeout even before the sweep
 * wrote it). `pending` gives a heartbeat acknowledged but not yet flushed, which counts as stored.
 * Unknown users are left out; the order is the database's.
 */
export async function statusOf(
  db: Queryable, users: string[], pending: (user: string) => number | undefined, nowMs: number, timeoutSec: number,
): Promise<Status[]> {
  const { rows } = await db.query<Status>(
    `SELECT user_id, state, online, state_since, last_heartbeat
       FROM ck_status($1::text[], $2::timestamptz[], $3::timestamptz, $4::interval)`,
    [users, users.map((u) => { const p = pending(u); return p === undefined ? null : iso(p); }), iso(nowMs), `${timeoutSec} seconds`],
  );
  return rows;
}

/**
 * A page of the users whose state at `nowMs` is `state` (as far as the stored rows say), in user_id order
 * after `after`. Callers take their exact status from statusOf.
 */
export async function usersInState(
  db: Queryable, state: string, after: string | undefined, limit: number, nowMs: number, timeoutSec: number,
): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT s.user_id FROM user_sessions s
      WHERE (s.current_state = $1 OR $1 = 'Offline')
        AND ck_effective_state(s.current_state, s.state_since, s.last_heartbeat, $4::timestamptz, $5::interval) = $1
        AND ($2::text IS NULL OR s.user_id > $2)
      ORDER BY s.user_id LIMIT $3`,
    [state, after ?? null, limit, iso(nowMs), `${timeoutSec} seconds`],
  );
  return rows.map((r) => r.user_id);
}
