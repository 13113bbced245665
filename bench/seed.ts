import type { Db } from '../src/db/types.js';

/** Bench user ids sort in numeric order: prefix + 7 digits. */
export const userId = (prefix: string, i: number) => `${prefix}${String(i).padStart(7, '0')}`;
export const userIds = (prefix: string, n: number, from = 1) => Array.from({ length: n }, (_, k) => userId(prefix, from + k));

const iso = (ms: number) => new Date(ms).toISOString();
const ID = `$1::text || lpad(i::text, 7, '0')`;

/** `n` users Online with a fresh heartbeat in their session "default" (users a client has just been heard from). */
export async function seedOnline(db: Db, prefix: string, n: number, nowMs: number): Promise<void> {
  await db.query(
    `INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
     SELECT ${ID}, 'Online', $3::timestamptz, $3::timestamptz FROM generate_series(1, $2) AS i`,
    [prefix, n, iso(nowMs)],
  );
  await defaultSessions(db, prefix);
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
  await defaultSessions(db, 'u');
}

/**
 * Each of the users (prefix) not Offline gets their session "default", with its history, as migration
 * 000015 leaves a database from before sessions: the session is what the sweep expires and what a
 * heartbeat finds alive (a user row without one is a user with no alive session). A user without a
 * timeline first gets one row, their state since state_since, so the timeline, the session's history and
 * the user row agree (else the first recompute writes that row, an event nobody sent).
 */
async function defaultSessions(db: Db, prefix: string): Promise<void> {
  const mine = `u.user_id BETWEEN $1::text || '0000000' AND $1::text || '9999999'`;
  await db.query(
    `INSERT INTO checkpoints (user_id, state, ts, source, session_id, received_at)
     SELECT u.user_id, u.current_state, u.state_since, 'client', 'default', u.state_since
       FROM user_sessions u WHERE ${mine} AND u.current_state <> 'Offline'
        AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.user_id = u.user_id)`,
    [prefix],
  );
  await db.query(
    `INSERT INTO sessions (user_id, session_id, state, state_since, last_heartbeat, last_active, started_at)
     SELECT u.user_id, 'default', u.current_state, u.state_since, u.last_heartbeat, u.last_heartbeat, u.state_since
       FROM user_sessions u WHERE ${mine} AND u.current_state <> 'Offline'`,
    [prefix],
  );
  await db.query(
    `INSERT INTO session_checkpoints (user_id, session_id, state, ts, content, source, received_at)
     SELECT c.user_id, 'default', c.state, c.ts, c.content, c.source, c.received_at
       FROM checkpoints c JOIN user_sessions u ON u.user_id = c.user_id WHERE ${mine} ORDER BY c.id`,
    [prefix],
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
  await db.query(
    `UPDATE sessions SET last_heartbeat = $3::timestamptz - interval '5 minutes', last_active = $3::timestamptz - interval '5 minutes'
      WHERE user_id BETWEEN $1 AND $2`,
    [userId('u', from), userId('u', to), iso(nowMs)],
  );
}

/** Everyone not Offline heard from just now (so a later heartbeat finds them alive, not gapped). */
export async function refreshHeartbeats(db: Db): Promise<void> {
  await db.query(`UPDATE user_sessions SET last_heartbeat = now() WHERE current_state <> 'Offline'`);
  await db.query(`UPDATE sessions SET last_heartbeat = now(), last_active = now()`);
}

/** Planner statistics and visibility maps as a settled database has them. */
export async function vacuum(db: Db, ...tables: string[]): Promise<void> {
  for (const t of tables) await db.query(`VACUUM ANALYZE ${t}`);
}

/**
 * `n` users (prefix u) Online, each with one session per name in `sessions`, started an hour or less
 * before `nowMs` and heard from (active) within its last 30 s: the rows ck's writers leave (`sessions`,
 * each session's history row, the user's timeline row), written by SQL.
 */
export async function seedSessions(db: Db, n: number, sessions: string[], nowMs: number): Promise<void> {
  const now = iso(nowMs);
  // Session k of user i: started (k + 1) x 20 minutes before now, less i mod 1200 s; last heartbeat
  // (i + 15 k) mod 30 s ago. The user is Online since their first session started.
  const started = `$3::timestamptz - (s.k + 1) * interval '20 minutes' + (i % 1200) * interval '1 second'`;
  const heard = `$3::timestamptz - ((i + 15 * s.k) % 30) * interval '1 second'`;
  const each = `FROM generate_series(1, $2) AS i CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS s(name, k)`;
  const first = `$3::timestamptz - cardinality($4::text[]) * interval '20 minutes' + (i % 1200) * interval '1 second'`;
  await db.query(
    `INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
     SELECT ${ID}, 'Online', ${first}, $3::timestamptz - (i % 30) * interval '1 second' FROM generate_series(1, $2) AS i`,
    ['u', n, now, sessions],
  );
  await db.query(
    `INSERT INTO sessions (user_id, session_id, state, state_since, last_heartbeat, last_active, started_at)
     SELECT ${ID}, s.name, 'Online', ${started}, ${heard}, ${heard}, ${started} ${each}`,
    ['u', n, now, sessions],
  );
  await db.query(
    `INSERT INTO session_checkpoints (user_id, session_id, state, ts, source, received_at)
     SELECT ${ID}, s.name, 'Online', ${started}, 'heartbeat', ${started} ${each}`,
    ['u', n, now, sessions],
  );
  await db.query(
    `INSERT INTO checkpoints (user_id, state, ts, source, session_id, received_at)
     SELECT ${ID}, 'Online', ${first}, 'heartbeat', $5::text, ${first} FROM generate_series(1, $2) AS i`,
    ['u', n, now, sessions, sessions[sessions.length - 1]],
  );
}
