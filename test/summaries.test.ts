import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateSummaries } from '../src/summaries/sql.js';
import { BACKENDS, ManualClock, startServer, type TestServer, timeoutsOf } from './helpers.js';

const H = 3600_000;

describe.each(BACKENDS)('summaries and timeline (%s)', (backend) => {
  let s: TestServer;
  // Thursday 2026-11-26 12:00 UTC; CK_MAX_BACKFILL lets tests write history.
  const clock = new ManualClock(Date.parse('2026-11-26T12:00:00.000Z'));
  beforeAll(async () => {
    s = await startServer(backend, { clock, env: { CK_MAX_BACKFILL: String(200 * 86_400) } });
  });
  afterAll(() => s.close());

  const cp = (user: string, state: string, iso: string, content?: object) =>
    s.req('POST', '/checkpoints', { user_id: user, state, timestamp: iso, content });

  it('splits intervals at local midnight and counts today up to now', async () => {
    await cp('sum1', 'Online', '2026-11-24T22:00:00.000Z');
    await cp('sum1', 'Busy', '2026-11-25T01:30:00.000Z');
    await cp('sum1', 'Offline', '2026-11-25T03:00:00.000Z');
    const r = await s.req('GET', '/summaries?user_id=sum1&from=2026-11-24&to=2026-11-26&tz=UTC');
    expect(r.status).toBe(200);
    expect(r.body.days).toEqual([
      { date: '2026-11-24', seconds: { Online: 7200 }, total_seconds: 7200 },
      { date: '2026-11-25', seconds: { Busy: 5400, Offline: 21 * 3600, Online: 5400 }, total_seconds: 86400 },
      { date: '2026-11-26', seconds: { Offline: 12 * 3600 }, total_seconds: 12 * 3600 },
    ]);
    expect(r.body.totals).toEqual({ Busy: 5400, Offline: 33 * 3600, Online: 12600 });
    // Berlin is UTC+1: 22:00Z on the 24th is 23:00 local.
    const berlin = await s.req('GET', '/summaries?user_id=sum1&from=2026-11-24&to=2026-11-25&tz=Europe/Berlin');
    expect(berlin.body.days[0].seconds).toEqual({ Online: 3600 });
    expect(berlin.body.tz).toBe('Europe/Berlin');
  });

  it('uses stored aggregates once aggregated, and a back-fill makes them recompute', async () => {
    const before = (await s.req('GET', '/summaries?user_id=sum1&from=2026-11-24&to=2026-11-26')).body;
    expect(await aggregateSummaries(s.db, clock.now(), timeoutsOf(60))).toBeGreaterThan(0);
    expect(await aggregateSummaries(s.db, clock.now(), timeoutsOf(60))).toBe(0); // idempotent: nothing due
    const stored = await s.db.query('SELECT day::text, state, seconds::float8 AS seconds FROM state_summaries WHERE user_id = $1 ORDER BY day, state', ['sum1']);
    expect(stored.rows.length).toBeGreaterThan(0);
    const after = (await s.req('GET', '/summaries?user_id=sum1&from=2026-11-24&to=2026-11-26')).body;
    expect(after).toEqual(before);
    // A late Away on the 25th: the stored day is invalid and the answer includes it at once.
    await cp('sum1', 'Away', '2026-11-25T02:00:00.000Z');
    const late = (await s.req('GET', '/summaries?user_id=sum1&from=2026-11-25&to=2026-11-25')).body;
    expect(late.days[0].seconds).toEqual({ Away: 3600, Busy: 1800, Offline: 21 * 3600, Online: 5400 });
    await aggregateSummaries(s.db, clock.now(), timeoutsOf(60));
    const again = (await s.req('GET', '/summaries?user_id=sum1&from=2026-11-25&to=2026-11-25')).body;
    expect(again.days[0].seconds).toEqual(late.days[0].seconds);
  });

  it('handles DST days of 23 and 25 hours and :45 offsets', async () => {
    // New York fell back on 2026-11-01: that local day has 25 hours.
    clock.t = Date.parse('2026-11-26T12:00:00.000Z');
    await cp('dst', 'Busy', '2026-10-31T12:00:00.000Z');
    const ny = await s.req('GET', '/summaries?user_id=dst&from=2026-11-01&to=2026-11-01&tz=America/New_York');
    expect(ny.body.days[0].total_seconds).toBe(25 * 3600);
    const ktm = await s.req('GET', '/summaries?user_id=dst&from=2026-11-02&to=2026-11-02&tz=Asia/Kathmandu');
    expect(ktm.body.days[0].total_seconds).toBe(24 * 3600);
    const before = await s.req('GET', '/summaries?user_id=dst&from=2026-10-31&to=2026-10-31&tz=Asia/Kathmandu');
    // 12:00Z = 17:45 local: 6h15m of Busy that day.
    expect(before.body.days[0].seconds).toEqual({ Busy: 6 * 3600 + 15 * 60 });
  });

  it('day_start moves where a day begins', async () => {
    await cp('night', 'Busy', '2026-11-25T22:00:00.000Z');
    await cp('night', 'Offline', '2026-11-26T03:00:00.000Z');
    const r = await s.req('GET', '/summaries?user_id=night&from=2026-11-25&to=2026-11-25&tz=UTC&day_start=04:00');
    expect(r.body.days[0].seconds).toEqual({ Busy: 5 * 3600, Offline: 3600 });
    expect(r.body.day_start).toBe('04:00');
  });

  it('defaults tz to the user timezone set with PUT /users/:id', async () => {
    const bad = await s.req('PUT', '/users/sum1', { timezone: 'Mars/Olympus' });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].path).toBe('/timezone');
    expect((await s.req('PUT', '/users/sum1', { timezone: 'Asia/Kolkata' })).body).toEqual({ user_id: 'sum1', timezone: 'Asia/Kolkata' });
    expect((await s.req('GET', '/users/sum1')).body.timezone).toBe('Asia/Kolkata');
    const r = await s.req('GET', '/summaries?user_id=sum1&from=2026-11-25&to=2026-11-25');
    expect(r.body.tz).toBe('Asia/Kolkata');
    // Kolkata is UTC+5:30: the first Online (22:00Z on the 24th) starts at 03:30 local on the 25th.
    const kol = await s.req('GET', '/summaries?user_id=sum1&from=2026-11-24&to=2026-11-25');
    expect(kol.body.days[0].total_seconds).toBe(0);
    expect(kol.body.days[1].seconds.Online).toBe(3 * 3600 + 1800);
  });

  it('counts an unswept heartbeat expiry as Offline from last_heartbeat + timeout', async () => {
    clock.t = Date.parse('2026-11-26T12:00:00.000Z');
    await s.req('POST', '/heartbeat', { user_id: 'hb' });
    clock.advance(H);
    const r = await s.req('GET', '/summaries?user_id=hb&from=2026-11-26&to=2026-11-26&tz=UTC');
    expect(r.body.days[0].seconds).toEqual({ Offline: 3540, Online: 60 });
    const tl = await s.req('GET', '/checkpoints?user_id=hb');
    expect(tl.body.checkpoints).toEqual([expect.objectContaining({ state: 'Online', open: true, duration_ms: 60_000 })]);
  });

  it('team summaries page through all users, as JSON and CSV', async () => {
    const p1 = await s.req('GET', '/summaries?from=2026-11-25&to=2026-11-25&tz=UTC&limit=2');
    expect(p1.body.users).toHaveLength(2);
    expect(p1.body.next_cursor).toEqual(expect.any(String));
    const p2 = await s.req('GET', `/summaries?from=2026-11-25&to=2026-11-25&tz=UTC&limit=100&cursor=${p1.body.next_cursor}`);
    const ids = [...p1.body.users, ...p2.body.users].map((u: any) => u.user_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain('sum1');
    const csv = await s.req('GET', '/summaries?from=2026-11-25&to=2026-11-25&tz=UTC&format=csv&limit=100');
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect(csv.body.split('\r\n')[0]).toBe('user_id,date,tz,state,seconds');
    expect(csv.body).toContain('sum1,2026-11-25,UTC,Busy,1800');
  });

  it('timeline: LEAD() durations, from clips nothing away, cursor pages', async () => {
    clock.t = Date.parse('2026-11-26T12:00:00.000Z');
    await cp('tl', 'Online', '2026-11-26T08:00:00.000Z');
    await cp('tl', 'Busy', '2026-11-26T09:00:00.000Z', { call: 1 });
    await cp('tl', 'Away', '2026-11-26T09:30:00.000Z');
    const r = await s.req('GET', '/checkpoints?user_id=tl&from=2026-11-26T09:10:00Z');
    expect(r.body.checkpoints.map((c: any) => [c.state, c.duration_ms, c.open])).toEqual([
      ['Busy', 30 * 60_000, false], ['Away', 150 * 60_000, true],
    ]);
    const p1 = await s.req('GET', '/checkpoints?user_id=tl&limit=2');
    expect(p1.body.checkpoints).toHaveLength(2);
    expect(p1.body.checkpoints[1].duration_ms).toBe(30 * 60_000);
    const p2 = await s.req('GET', `/checkpoints?user_id=tl&limit=2&cursor=${p1.body.next_cursor}`);
    expect(p2.body.checkpoints.map((c: any) => c.state)).toEqual(['Away']);
    expect(p2.body.next_cursor).toBeNull();
    const to = await s.req('GET', '/checkpoints?user_id=tl&to=2026-11-26T09:00:00Z');
    expect(to.body.checkpoints.map((c: any) => c.state)).toEqual(['Online']);
    expect((await s.req('GET', '/checkpoints?user_id=nobody')).status).toBe(404);
  });

  it('rejects bad ranges and zones with 422', async () => {
    for (const q of ['from=2026-02-30&to=2026-03-01', 'from=2026-11-02&to=2026-11-01', 'from=2025-01-01&to=2026-11-01', 'from=2026-11-01&to=2026-11-02&tz=Nowhere', 'from=2026-11-01&to=2026-11-02&day_start=25:00']) {
      const r = await s.req('GET', `/summaries?user_id=sum1&${q}`);
      expect(r.status, q).toBe(422);
    }
    expect((await s.req('GET', '/summaries?user_id=ghost&from=2026-11-01&to=2026-11-02')).status).toBe(404);
  });
});
