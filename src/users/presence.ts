import type { Queryable } from '../db/types.js';
import { intervals, iso, type Timeouts } from '../time.js';

/**
 * Sets a user's manual presence from `nowMs` until `untilMs` (undefined: until cleared), or clears it
 * (state undefined), and recomputes their timeline (ck_set_manual). It holds while one of their sessions
 * is alive (docs/presence-model.md).
 */
export async function setManual(
  db: Queryable, user: string, state: string | undefined, untilMs: number | undefined, nowMs: number, t: Timeouts,
): Promise<void> {
  await db.query('SELECT ck_set_manual($1, $2, $3, $4, $5::interval, $6::interval)', [
    user, state ?? null, untilMs === undefined ? null : iso(untilMs), iso(nowMs), ...intervals(t),
  ]);
}

/** Ends a session now (ck_end_session); false when no such session is alive. */
export async function endSession(db: Queryable, user: string, session: string, nowMs: number, t: Timeouts): Promise<boolean> {
  const { rows } = await db.query<{ ended: boolean }>('SELECT ck_end_session($1, $2, $3, $4::interval, $5::interval) AS ended', [
    user, session, iso(nowMs), ...intervals(t),
  ]);
  return rows[0]!.ended;
}
