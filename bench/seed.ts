import type { Db } from '../src/db/types.js';

/** Bench user ids sort in numeric order: prefix + 7 digits. */
export const userId = (prefix: string, i: number) => `${prefix}${String(i).padStart(7, '0')}`;
export const userIds = (prefix: string, n: number, from = 1) => Array.from({ length: n }, (_, k) => userId(prefix, from + k));

const iso = (ms: number) => new Date(ms).toISOString();
const ID = `$1::text || lpad(i::text, 7, '0')`;

/** `n` sessions Online with a fresh heartbeat (users a client has just been heard from). */
export async function seedOnline(db: Db, prefix: string, n: number, nowMs: number): Promise<void> {
  await db.query(
    `INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
     SELECT ${ID}, 'Online', $3::timestamptz, $3::timestamptz FROM generate_series(1, $2) AS i`,
    [prefix, n, iso(nowMs)],
  );
}

/**
 * `n` sessions (prefix u), heard from within the last 30 s of `nowMs`. The first `withHistory` have
 * checkpoints: yesterday Online 08:00, Away 12:00, Online 13:00, Offline 18:00 (UTC, a few minutes'
 * jitter), and Online since 10 minutes ago, which is their session's state. The others are in
 * Online/Away/Busy with no checkpoint rows.
 */
export async function seedPopulation(db: Db, n: number, withHistory: number, nowMs: number): Promise<void> {
  const now = iso(nowMs);
  await db.query(
    `INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
     SELECT ${ID},
            CASE WHEN i <= $3 THEN 'Online' ELSE (ARRAY['Online', 'Away', 'Busy'])[1 + i % 3] END,
            CASE WHEN i <= $3 THEN $4::timestamptz - interval '10 minutes' - (i % 60) * interval '1 second'
                 ELSE $4::timestamptz - (i % 3600) * interval '1 second' END,
            $4::timestamptz - (i % 30) * interval '1 second'
       FROM generate_series(1, $2) AS i`,
    ['u', n, withHistory, now],
  );
  await db.query(
    `INSERT INTO checkpoints (user_id, state, ts, source)
     SELECT ${ID}, c.state,
            CASE WHEN c.at IS NULL THEN $3::timestamptz - interval '10 minutes' - (i % 60) * interval '1 second'
                 ELSE date_trunc('day', $3::timestamptz, 'UTC') - interval '1 day' + c.at + (i % 600) * interval '1 second' END,
            'client'
       FROM generate_series(1, $2) AS i
      CROSS JOIN (VALUES (1, 'Online', interval '8 hours'), (2, 'Away', interval '12 hours'),
                         (3, 'Online', interval '13 hours'), (4, 'Offline', interval '18 hours'),
                         (5, 'Online', NULL::interval)) AS c(k, state, at)
      ORDER BY i, c.k`,
    ['u', withHistory, now],
  );
}

/** One user with a year of history before today (UTC): five state changes a day. */
export async function seedYear(db: Db, user: string, nowMs: number): Promise<void> {
  await db.query(
    `INSERT INTO checkpoints (user_id, state, ts, source)
     SELECT $1::text, c.state, date_trunc('day', $2::timestamptz, 'UTC') - d * interval '1 day' + c.at + (d % 7) * interval '5 minutes', 'client'
       FROM generate_series(365, 1, -1) AS d
      CROSS JOIN (VALUES (1, 'Online', interval '8 hours'), (2, 'Busy', interval '10 hours'),
                         (3, 'Away', interval '12 hours'), (4, 'Online', interval '13 hours'),
                         (5, 'Offline', interval '18 hours')) AS c(k, state, at)
      ORDER BY d DESC, c.k`,
    [user, iso(nowMs)],
  );
  await db.query(
    `INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
     SELECT $1::text, c.state, c.ts, c.ts FROM checkpoints c WHERE c.user_id = $1 ORDER BY c.ts DESC LIMIT 1`,
    [user],
  );
}

/** Users u<from>..u<to> last heard from 5 minutes before `nowMs`: the sweep owes them an Offline. */
export async function silence(db: Db, from: number, to: number, nowMs: number): Promise<void> {
  await db.query(
    `UPDATE user_sessions SET last_heartbeat = $3::timestamptz - interval '5 minutes'
      WHERE user_id BETWEEN $1 AND $2`,
    [userId('u', from), userId('u', to), iso(nowMs)],
  );
}

/** Everyone not Offline heard from just now (so a later heartbeat finds them alive, not gapped). */
export async function refreshHeartbeats(db: Db): Promise<void> {
  await db.query(`UPDATE user_sessions SET last_heartbeat = now() WHERE current_state <> 'Offline'`);
}

/** Planner statistics and visibility maps as a settled database has them. */
export async function vacuum(db: Db, ...tables: string[]): Promise<void> {
  for (const t of tables) await db.query(`VACUUM ANALYZE ${t}`);
}
