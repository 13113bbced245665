import fc from 'fast-check';
import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateSummaries } from '../src/summaries/sql.js';
import { BACKENDS, ManualClock, startServer, type TestServer, timeoutsOf } from './helpers.js';

const ZONES = ['America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Europe/Berlin', 'UTC'];
const STATES = ['Online', 'Away', 'Busy', 'DoNotDisturb', 'Offline'];
const TIMEOUT_MS = 60_000;
// Starts two days before New York falls back (2026-11-01) so histories cross the 25-hour day.
const START = Date.parse('2026-10-30T20:00:00.000Z');

type Op =
  | { kind: 'checkpoint'; state: string; advance: number; backfill: number }
  | { kind: 'heartbeat'; advance: number }
  | { kind: 'sweep'; advance: number }
  | { kind: 'aggregate'; advance: number };

const advance = fc.oneof(fc.integer({ min: 0, max: 50_000 }), fc.integer({ min: 0, max: 6 * 3600_000 }));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('checkpoint' as const), state: fc.constantFrom(...STATES), advance, backfill: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 * 3600_000 })) }),
  fc.record({ kind: fc.constant('heartbeat' as const), advance }),
  fc.record({ kind: fc.constant('sweep' as const), advance }),
  fc.record({ kind: fc.constant('aggregate' as const), advance }),
);

/** Seconds per local date and state, brute force from the timeline with luxon. */
function bruteForce(timeline: { state: string; timestamp: string; duration_ms: number; open: boolean }[], now: number, zone: string) {
  const intervals: [string, number, number][] = timeline.map((c) => [c.state, Date.parse(c.timestamp), Date.parse(c.timestamp) + c.duration_ms]);
  const last = intervals[intervals.length - 1];
  if (last && last[0] !== 'Offline' && last[2] < now) intervals.push(['Offline', last[2], now]);
  const out = new Map<string, Map<string, number>>();
  for (const [state, s, e] of intervals) {
    let day = DateTime.fromMillis(s, { zone }).startOf('day');
    while (day.toMillis() < e) {
      const next = day.plus({ days: 1 }).startOf('day');
      const ms = Math.min(e, next.toMillis()) - Math.max(s, day.toMillis());
      if (ms > 0) {
        const d = day.toISODate()!;
        const m = out.get(d) ?? new Map();
        m.set(state, (m.get(state) ?? 0) + ms);
        out.set(d, m);
      }
      day = next;
    }
  }
  return out;
}

describe.each(BACKENDS)('summaries equal a brute force over the timeline (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock(START);
  beforeAll(async () => {
    s = await startServer(backend, { clock, env: { CK_MAX_BACKFILL: String(30 * 86_400) } });
  });
  afterAll(() => s.close());

  it('for random histories with gaps, back-fills, timeouts and aggregation runs', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), fc.constantFrom(...ZONES), async (ops, zone) => {
        const user = `p${run++}`;
        clock.t = START;
        for (const o of ops) {
          clock.advance(o.advance);
          if (o.kind === 'checkpoint') {
            const r = await s.req('POST', '/checkpoints', { user_id: user, state: o.state, timestamp: clock.now() - o.backfill });
            expect([200, 201]).toContain(r.status);
          } else if (o.kind === 'heartbeat') {
            expect((await s.req('POST', '/heartbeat', { user_id: user })).status).toBe(200);
          } else if (o.kind === 'sweep') {
            await s.app.ck.coalescer.flush();
            await s.db.query(`SELECT ck_sweep_offline('60 seconds'::interval, $1)`, [new Date(clock.now()).toISOString()]);
          } else {
            await s.app.ck.coalescer.flush();
            await aggregateSummaries(s.db, clock.now(), timeoutsOf(TIMEOUT_MS / 1000));
          }
        }
        await s.app.ck.coalescer.flush();
        const tl = await s.req('GET', `/checkpoints?user_id=${user}&limit=1000`);
        if (tl.status === 404) return; // nothing was recorded
        const checkpoints = tl.body.checkpoints;
        for (let i = 1; i < checkpoints.length; i++) expect(checkpoints[i].state).not.toBe(checkpoints[i - 1].state);

        const now = clock.now();
        const expected = bruteForce(checkpoints, now, zone);
        const from = DateTime.fromMillis(START - 86_400_000, { zone }).toISODate()!;
        const to = DateTime.fromMillis(now, { zone }).toISODate()!;
        const r = await s.req('GET', `/summaries?user_id=${user}&from=${from}&to=${to}&tz=${encodeURIComponent(zone)}`);
        expect(r.status).toBe(200);
        for (const day of r.body.days) {
          const want = Object.fromEntries([...(expected.get(day.date) ?? new Map())].map(([k, v]) => [k, v / 1000]));
          expect(day.seconds, `${user} ${zone} ${day.date}`).toEqual(want);
        }
        const days = new Set(r.body.days.map((d: { date: string }) => d.date));
        for (const d of expected.keys()) expect(days.has(d), `${d} in range`).toBe(true);
      }),
      { numRuns: 60 },
    );
  }, 240_000);
});
