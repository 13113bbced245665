import { sweepOffline } from '../../src/liveness/heartbeats.js';
import type { Timeouts } from '../../src/time.js';
import type { Scenario } from '../context.js';
import { median, timed } from '../load.js';
import { below, fmt, info, none, type Row } from '../report.js';
import { seedSessions, userId, vacuum } from '../seed.js';
import { startService } from '../service.js';
import { beatSessions } from './sessions.js';

const SESSIONS = ['laptop', 'phone'];
/** CK_HEARTBEAT_TIMEOUT of the service while every session sends its first heartbeat (see below). */
const RSS_TIMEOUT_SEC = 600;
const iso = (ms: number) => new Date(ms).toISOString();

/** One sweep case: sessions made due in SQL, then one ck_sweep_offline. */
interface Case {
  name: string;
  /** Users u<from>..u<to>. */
  from: number;
  to: number;
  /** Which of their sessions. */
  sessions: string[];
  kind: 'expiry' | 'idle';
}

/**
 * BENCH_USERS users (1,000,000) x 2 sessions, seeded by SQL: the sweep (ck_sweep_offline, through
 * sweepOffline as the scheduler calls it) with nothing due, with 100,000 sessions expiring and with
 * 100,000 sessions idle (Online to Away at last_active + CK_IDLE_TIMEOUT), each both ways: one session of
 * each of 100,000 users (the users keep their other session) and both sessions of 50,000 users (the users
 * go Offline or Away). Then the service, and a heartbeat from every session (POST /heartbeats `sessions`):
 * its RSS holding every user's two sessions (the service started with a longer heartbeat timeout, below).
 */
export const sessionsScale: Scenario = async (ctx) => {
  const n = ctx.users;
  const tenth = Math.max(2, Math.round(n / 10));
  const half = Math.floor(tenth / 2);
  const backend = await ctx.backend('sessions_scale');
  const t: Timeouts = { heartbeatSec: backend.config.heartbeatTimeoutSec, idleSec: backend.config.idleTimeoutSec };
  const db = await backend.open();
  let open = true;
  ctx.defer(async () => {
    if (open) await db.close();
  });
  const loadedAt = Date.now();
  const sweepAt = loadedAt + 1000;

  ctx.log(`sessions-scale: loading ${fmt.int(n)} users x ${SESSIONS.length} sessions`);
  const load = await timed(async () => {
    await seedSessions(db, n, SESSIONS, loadedAt);
    await vacuum(db, 'user_sessions', 'sessions', 'session_checkpoints', 'checkpoints');
  });

  ctx.log('sessions-scale: sweeps');
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await timed(() => sweepOffline(db, t, sweepAt));
    if (r.value !== 0) throw new Error(`the sweep settled ${r.value} users; expected none`);
    idle.push(r.ms);
  }

  const cases: Case[] = [
    { name: `expiring ${fmt.int(tenth)} sessions (1 of each of ${fmt.int(tenth)} users)`, from: 1, to: tenth, sessions: ['phone'], kind: 'expiry' },
    { name: `expiring ${fmt.int(2 * half)} sessions (both of ${fmt.int(half)} users)`, from: tenth + 1, to: tenth + half, sessions: SESSIONS, kind: 'expiry' },
  ];
  if (t.idleSec > 0) {
    cases.push(
      { name: `idle decay of ${fmt.int(tenth)} sessions (1 of each of ${fmt.int(tenth)} users)`, from: 2 * tenth + 1, to: 3 * tenth, sessions: ['phone'], kind: 'idle' },
      { name: `idle decay of ${fmt.int(2 * half)} sessions (both of ${fmt.int(half)} users)`, from: 3 * tenth + 1, to: 3 * tenth + half, sessions: SESSIONS, kind: 'idle' },
    );
  }
  const swept: { name: string; ms: number; users: number; sessions: number; missed: number; userStates: Record<string, number> }[] = [];
  for (const c of cases) {
    if (c.to > n) {
      ctx.log(`sessions-scale: ${c.name} skipped: BENCH_USERS=${n} is too few`);
      continue;
    }
    const range = [userId('u', c.from), userId('u', c.to), c.sessions];
    // Expiry: last heard from 5 minutes before the load (the sweep owes an Offline at + timeout). Idle:
    // heard from just now but last active idle + 60 s before (an Away at last_active + idle).
    await db.query(
      c.kind === 'expiry'
        ? `UPDATE sessions SET last_heartbeat = $4::timestamptz - interval '5 minutes', last_active = $4::timestamptz - interval '5 minutes'
            WHERE user_id BETWEEN $1 AND $2 AND session_id = ANY ($3::text[])`
        : `UPDATE sessions SET last_active = $4::timestamptz - $5 * interval '1 second' - interval '60 seconds'
            WHERE user_id BETWEEN $1 AND $2 AND session_id = ANY ($3::text[])`,
      c.kind === 'expiry' ? [...range, iso(loadedAt)] : [...range, iso(loadedAt), t.idleSec],
    );
    await vacuum(db, 'sessions', 'user_sessions');
    const r = await timed(() => sweepOffline(db, t, sweepAt));
    // What the sweep left undone: sessions still alive (expiry) or still Online (idle) in the range.
    const { rows } = await db.query<{ missed: string }>(
      `SELECT count(*)::text AS missed FROM sessions WHERE user_id BETWEEN $1 AND $2 AND session_id = ANY ($3::text[])
          ${c.kind === 'idle' ? `AND state = 'Online'` : ''}`, range);
    const states = await db.query<{ state: string; n: string }>(
      `SELECT current_state AS state, count(*)::text AS n FROM user_sessions WHERE user_id BETWEEN $1 AND $2 GROUP BY 1`, range.slice(0, 2));
    swept.push({
      name: c.name, ms: r.ms, users: r.value, sessions: (c.to - c.from + 1) * c.sessions.length, missed: Number(rows[0]!.missed),
      userStates: Object.fromEntries(states.rows.map((s) => [s.state, Number(s.n)])),
    });
  }
  // Everyone heard from just now, so the heartbeats below find the sessions alive; the ones the sweep
  // ended start again (a write each), the idle ones come back Online (a write each).
  await db.query(`UPDATE sessions SET last_heartbeat = now(), last_active = now()`);
  await vacuum(db, 'user_sessions', 'sessions', 'session_checkpoints', 'checkpoints');
  await db.close();
  open = false;

  // The service holds sessions until their expiry or idle decay is near. A first pass over 2,000,000
  // sessions takes longer than CK_HEARTBEAT_TIMEOUT (60 s) here, and the sessions it reaches late would
  // have expired since the refresh above and start again, each a write: the pass would measure that, not
  // the memory of sessions held. The service gets a 10-minute timeout, and idle decay as long: with the
  // default 5 minutes, a pass slowed by the sweep cases' 400,000 session restarts reached sessions whose
  // idle decay had come due since the refresh, each then a write (two session rows), and the pass took
  // 18 minutes on 2026-12-06.
  const svc = await startService({
    ...backend, env: { ...backend.env, CK_HEARTBEAT_TIMEOUT: String(RSS_TIMEOUT_SEC), CK_IDLE_TIMEOUT: String(RSS_TIMEOUT_SEC) },
  });
  ctx.defer(() => svc.stop());
  const atStart = svc.memory();
  ctx.log(`sessions-scale: a heartbeat from each of ${fmt.int(n)} users' ${SESSIONS.length} sessions`);
  // A user's sessions side by side (one lookup finds both).
  const beats = Array.from({ length: n }, (_, k) => SESSIONS.map((session_id) => ({ user_id: userId('u', k + 1), session_id }))).flat();
  const beat = await timed(() => beatSessions(svc.url, svc.key, beats));
  const afterBeats = svc.memory();
  await svc.stop();

  const heldPerGb = (n * 1024) / afterBeats.peakMb;
  const rows: Row[] = [
    info('sessions-scale', `load (${fmt.int(n)} users x ${SESSIONS.length} sessions, histories, vacuum)`, fmt.s(load.ms)),
    below('sessions-scale', 'sweep, none due (median of 5)', median(idle), 20, fmt.ms),
    ...swept.flatMap((s) => [
      below('sessions-scale', `sweep ${s.name}`, s.ms, 2000, fmt.s),
      none('sessions-scale', `  sessions it missed; users settled ${fmt.int(s.users)}, now ${Object.entries(s.userStates).map(([k, v]) => `${k} ${fmt.int(v)}`).join(', ')}`, { missed: s.missed }),
    ]),
    info('sessions-scale', `first heartbeat of all ${fmt.int(beats.length)} sessions (POST /heartbeats, 1,000 a request; CK_HEARTBEAT_TIMEOUT and CK_IDLE_TIMEOUT ${RSS_TIMEOUT_SEC})`, `${fmt.s(beat.ms)}, ${fmt.rate(beats.length / (beat.ms / 1000))}`),
    info('sessions-scale', 'service RSS at start / after all heartbeats', `${fmt.mb(atStart.rssMb)} / ${fmt.mb(afterBeats.rssMb)}`),
    below('sessions-scale', 'service RSS, peak (VmHWM)', afterBeats.peakMb, 600, fmt.mb),
    info('sessions-scale', 'users (x 2 sessions) held per GB of peak RSS', fmt.int(heldPerGb)),
  ];
  return {
    rows,
    raw: {
      users: n, sessions: SESSIONS, timeouts: t, loadMs: load.ms, sweepIdleMs: idle, swept,
      firstHeartbeats: { ms: beat.ms, sessions: beats.length }, memory: { atStart, afterBeats }, heldPerGb,
    },
  };
};
