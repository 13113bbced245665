import type { Queryable } from '../db/types.js';
import { intervals, iso, type Timeouts } from '../time.js';
import type { Liveness } from './heartbeats.js';

/** A user's current state as the API reports it (times in epoch ms; the HTTP layer formats them). */
export interface Status extends Liveness {
  online: boolean;
  /** Sessions alive now; undefined in a heartbeat's answer from memory (GET /status has it). */
  sessions?: number;
  /** The manual presence in force (docs/presence-model.md), or null. */
  manual?: { state: string; until: number | null } | null;
}

interface Row extends Liveness {
  online: boolean;
  sessions: number;
  manual_state: string | null;
  manual_until: number | null;
}

/**
 * Users' status, exact at `nowMs` (ck_status: the fold of the user's sessions and manual presence, with
 * what is due and not yet written applied). `pending` gives a heartbeat acknowledged but not yet flushed,
 * which counts as stored. Unknown users are left out; the order is the database's.
 */
export async function statusOf(
  db: Queryable, users: string[], pending: (user: string) => number | undefined, nowMs: number, t: Timeouts,
): Promise<Status[]> {
  const { rows } = await db.query<Row>(
    `SELECT user_id, state, online, state_since, last_heartbeat, sessions, manual_state, manual_until
       FROM ck_status($1::text[], $2::timestamptz[], $3::timestamptz, $4::interval, $5::interval)`,
    [users, users.map((u) => { const p = pending(u); return p === undefined ? null : iso(p); }), iso(nowMs), ...intervals(t)],
  );
  return rows.map((r) => ({
    user_id: r.user_id, state: r.state, online: r.online, state_since: r.state_since, last_heartbeat: r.last_heartbeat,
    sessions: r.sessions, manual: r.manual_state === null ? null : { state: r.manual_state, until: r.manual_until },
  }));
}

/**
 * A page of the users whose stored state is `state` (for Offline, also those with a session whose
 * expiry has passed), in user_id order after `after`. Callers take their exact status from statusOf.
 */
export async function usersInState(
  db: Queryable, state: string, after: string | undefined, limit: number, nowMs: number, t: Timeouts,
): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT s.user_id FROM user_sessions s
      WHERE (s.current_state = $1
             OR ($1 = 'Offline' AND EXISTS (SELECT 1 FROM sessions x WHERE x.user_id = s.user_id
                                            AND ck_session_expiry(x.last_heartbeat, $5::interval) <= $4::timestamptz)))
        AND ($2::text IS NULL OR s.user_id > $2)
      ORDER BY s.user_id LIMIT $3`,
    [state, after ?? null, limit, iso(nowMs), intervals(t)[0]],
  );
  return rows.map((r) => r.user_id);
}

/** A session as GET /users/:user_id/sessions lists it (times in epoch ms). */
export interface SessionView {
  session_id: string;
  state: string;
  state_since: number;
  last_heartbeat: number;
  last_active: number;
  client: string | null;
}

/** A user's alive sessions, each in its state as of `nowMs`. */
export async function sessionsOf(db: Queryable, user: string, nowMs: number, t: Timeouts): Promise<SessionView[]> {
  const { rows } = await db.query<SessionView>(
    `SELECT session_id, state, state_since, last_heartbeat, last_active, client FROM ck_user_sessions($1, $2, $3::interval, $4::interval)`,
    [user, iso(nowMs), ...intervals(t)],
  );
  return rows;
}
