import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sweepOffline } from '../src/liveness/heartbeats.js';
import { BACKENDS, ManualClock, startServer, type TestServer } from './helpers.js';

/**
 * The user's timeline is rules 1-3 (docs/presence-model.md) applied at every instant to the session
 * histories and manual presence: random interleavings of heartbeats (active or not), session checkpoints
 * (some back-dated), session ends, manual presence set, cleared and expiring, and idle gaps over up to four
 * sessions go through the API; then the stored timeline is compared with a brute-force fold, instant by
 * instant, and the summaries with brute-force per-day totals.
 */
const TIMEOUT = 60_000;
const IDLE = 30_000;
const PRIORITY: Record<string, number> = { DoNotDisturb: 50, Busy: 40, Online: 30, Away: 20, Offline: 0 };
const SESSIONS = ['s1', 's2', 's3', 's4'];

type Op =
  | { kind: 'wait'; ms: number }
  | { kind: 'beat'; session: string; active: boolean }
  | { kind: 'checkpoint'; session: string; state: string; back: number }
  | { kind: 'end'; session: string }
  | { kind: 'manual'; state: string; until: number | null }
  | { kind: 'clear' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 90_000 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('beat' as const), session: fc.constantFrom(...SESSIONS), active: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({
    kind: fc.constant('checkpoint' as const), session: fc.constantFrom(...SESSIONS),
    state: fc.constantFrom('Online', 'Away', 'Busy', 'DoNotDisturb', 'Offline'),
    back: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200_000 })),
  }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), session: fc.constantFrom(...SESSIONS) }) },
  { weight: 1, arbitrary: fc.record({
    kind: fc.constant('manual' as const), state: fc.constantFrom('Busy', 'DoNotDisturb', 'Away'),
    until: fc.oneof(fc.constant(null), fc.integer({ min: 1000, max: 150_000 })),
  }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

interface Row { ts: number; id: number; state: string }

/** Rules 1-3 at instant t (after every change at t), from the histories as stored. */
function fold(t: number, sessions: Map<string, Row[]>, manual: { set_at: number; id: number; state: string | null; until: number | null }[]): string {
  const alive: Row[] = [];
  for (const rows of sessions.values()) {
    let last: Row | undefined;
    for (const r of rows) if (r.ts <= t) last = r;
    if (last && last.state !== 'Offline') alive.push(last);
  }
  if (alive.length === 0) return 'Offline';
  let m: (typeof manual)[number] | undefined;
  for (const x of manual) if (x.set_at <= t) m = x;
  if (m && m.state !== null && (m.until === null || m.until > t)) return m.state;
  alive.sort((a, b) => (PRIORITY[b.state]! - PRIORITY[a.state]!) || (b.ts - a.ts) || (b.id - a.id));
  return alive[0]!.state;
}

describe.each(BACKENDS)('sessions: the timeline is the fold of rules 1-3 (%s)', (backend) => {
  it('at every instant, and summaries are its per-day totals (property)', async () => {
    const clock = new ManualClock(Date.parse('2026-11-20T09:00:00.000Z'));
    const s: TestServer = await startServer(backend, {
      clock, env: { CK_HEARTBEAT_TIMEOUT: String(TIMEOUT / 1000), CK_IDLE_TIMEOUT: String(IDLE / 1000), CK_FLUSH_INTERVAL_MS: '1000' },
    });
    let run = 0;
    try {
      await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const user = `prop-${run++}`;
        const start = clock.now();
        for (const o of ops) {
          if (o.kind === 'wait') {
            clock.advance(o.ms);
            // The sweep runs whenever it runs: sometimes on time, sometimes long after.
            if (o.ms % 3 === 0) await sweepOffline(s.db, { heartbeatSec: TIMEOUT / 1000, idleSec: IDLE / 1000 }, clock.now());
            continue;
          }
          let r;
          if (o.kind === 'beat') r = await s.req('POST', '/heartbeat', { user_id: user, session_id: o.session, active: o.active });
          else if (o.kind === 'checkpoint') {
            const ts = Math.max(clock.now() - o.back, start);
            r = await s.req('POST', '/checkpoints', { user_id: user, session_id: o.session, state: o.state, timestamp: ts });
          } else if (o.kind === 'end') r = await s.req('DELETE', `/users/${user}/sessions/${o.session}`);
          else if (o.kind === 'manual') r = await s.req('PUT', `/users/${user}/presence`, o.until === null ? { state: o.state } : { state: o.state, until: clock.now() + o.until });
          else r = await s.req('DELETE', `/users/${user}/presence`);
          expect([200, 201, 204, 404], JSON.stringify({ o, r: r.body })).toContain(r.status);
          clock.advance(1);
        }
        await s.app.ck.coalescer.flush();
        await sweepOffline(s.db, { heartbeatSec: TIMEOUT / 1000, idleSec: IDLE / 1000 }, clock.now());
        const now = clock.now();

        const q = async <T>(sql: string) => (await s.db.query<T>(sql, [user])).rows;
        const sessionRows = await q<Row & { session_id: string }>(
          `SELECT session_id, ck_ms(ts) AS ts, id::int AS id, state FROM session_checkpoints WHERE user_id = $1 ORDER BY ts, id`);
        const sessions = new Map<string, Row[]>();
        for (const r of sessionRows) sessions.set(r.session_id, [...(sessions.get(r.session_id) ?? []), r]);
        const manual = await q<{ set_at: number; id: number; state: string | null; until: number | null }>(
          `SELECT ck_ms(set_at) AS set_at, id::int AS id, state, ck_ms(until) AS until FROM manual_presence WHERE user_id = $1 ORDER BY set_at, id`);
        const timeline = await q<Row>(`SELECT ck_ms(ts) AS ts, id::int AS id, state FROM checkpoints WHERE user_id = $1 ORDER BY ts, id`);

        // State-change-only, and the same state as the fold after every change, wherever anything changed.
        for (let i = 1; i < timeline.length; i++) expect(timeline[i]!.state, `${user} repeats a state`).not.toBe(timeline[i - 1]!.state);
        const instants = new Set<number>([...sessionRows.map((r) => r.ts), ...manual.flatMap((m) => [m.set_at, ...(m.until !== null && m.until < now ? [m.until] : [])]), ...timeline.map((r) => r.ts)]);
        for (const t of [...instants].filter((x) => x <= now).sort((a, b) => a - b)) {
          let stored = 'Offline';
          for (const r of timeline) if (r.ts <= t) stored = r.state;
          expect({ user, t: t - start, stored }).toEqual({ user, t: t - start, stored: fold(t, sessions, manual) });
        }

        // Summaries: time per state in the UTC days touched, up to now.
        const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
        const totals: Record<string, number> = {};
        for (let i = 0; i < timeline.length; i++) {
          const end = Math.min(timeline[i + 1]?.ts ?? now, now);
          if (end > timeline[i]!.ts) totals[timeline[i]!.state] = (totals[timeline[i]!.state] ?? 0) + (end - timeline[i]!.ts);
        }
        if (timeline.length > 0) {
          const r = await s.req('GET', `/summaries?user_id=${user}&from=${day(timeline[0]!.ts)}&to=${day(now)}&tz=UTC`);
          expect(r.status).toBe(200);
          const got = Object.fromEntries(Object.entries(r.body.totals as Record<string, number>).map(([k, v]) => [k, Math.round(v * 1000)]));
          expect(got).toEqual(totals);
        }
        clock.advance(3_600_000);
      }), { numRuns: backend === 'pglite' ? 40 : 25 });
    } finally {
      await s.close();
    }
  }, 300_000);
});
