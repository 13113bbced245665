import { SQLSTATE, sqlState, type Queryable } from '../db/types.js';
import { isTimezone } from './timezones.js';

export interface Settings {
  user_id: string;
  /** IANA zone: the default of the user's summaries. */
  timezone: string;
}

export class UnknownTimezoneError extends Error {}

/** Whether ck knows the user: they have a session row or settings. */
export async function userExists(db: Queryable, user: string): Promise<boolean> {
  const { rows } = await db.query(
    'SELECT 1 FROM user_sessions WHERE user_id = $1 UNION ALL SELECT 1 FROM user_settings WHERE user_id = $1 LIMIT 1', [user],
  );
  return rows.length > 0;
}

/** A known user's settings (UTC when none were set); undefined for a user ck does not know. */
export async function getSettings(db: Queryable, user: string): Promise<Settings | undefined> {
  const { rows } = await db.query<{ timezone: string }>(
    `SELECT coalesce((SELECT timezone FROM user_settings WHERE user_id = $1), 'UTC') AS timezone
      WHERE EXISTS (SELECT 1 FROM user_sessions WHERE user_id = $1) OR EXISTS (SELECT 1 FROM user_settings WHERE user_id = $1)`,
    [user],
  );
  return rows[0] && { user_id: user, timezone: rows[0].timezone };
}

/** Sets the user's timezone (ck_set_timezone recomputes stored summaries in it). */
export async function setTimezone(db: Queryable, user: string, timezone: string): Promise<Settings> {
  if (!(await isTimezone(db, timezone))) throw new UnknownTimezoneError(timezone);
  await db.query('SELECT ck_set_timezone($1, $2)', [user, timezone]).catch((err) => {
    throw sqlState(err) === SQLSTATE.invalidParameter ? new UnknownTimezoneError(timezone) : err;
  });
  return { user_id: user, timezone };
}

/** Users' own timezones, for those who set one. */
export async function userTimezones(db: Queryable, users: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ user_id: string; timezone: string }>(
    'SELECT user_id, timezone FROM user_settings WHERE user_id = ANY($1::text[])', [users],
  );
  return new Map(rows.map((r) => [r.user_id, r.timezone]));
}
