import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WITH_POOLER, ManualClock, startServer, type TestServer } from './helpers.js';
import { rawReq } from './problem.js';

describe.each(WITH_POOLER)('heartbeats and checkpoints (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    s = await startServer(backend, { clock });
  });
  afterAll(() => s.close());

  const timeline = async (user: string) => (await s.req('GET', `/checkpoints?user_id=${user}&limit=1000`)).body.checkpoints;

  it('a first heartbeat makes an unknown user Online with a heartbeat checkpoint', async () => {
    const r = await s.req('POST', '/heartbeat', { user_id: 'hb1' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      user_id: 'hb1', state: 'Online', online: true,
      state_since: '2026-11-20T12:00:00.000Z', last_heartbeat: '2026-11-20T12:00:00.000Z',
    });
    const tl = await timeline('hb1');
    expect(tl.map((c: any) => [c.state, c.source])).toEqual([['Online', 'heartbeat']]);
  });

  it('later heartbeats only move last_heartbeat and write no checkpoint', async () => {
    clock.advance(5000);
    const r = await s.req('POST', '/heartbeat', { user_id: 'hb1' });
    expect(r.body.last_heartbeat).toBe('2026-11-20T12:00:05.000Z');
    expect(r.body.state_since).toBe('2026-11-20T12:00:00.000Z');
    await s.app.ck.coalescer.flush();
    const st = await s.req('GET', '/status/hb1');
    expect(st.body.last_heartbeat).toBe('2026-11-20T12:00:05.000Z');
    expect(await timeline('hb1')).toHaveLength(1);
  });

  it('checkpoints are written only on a change; 201 then 200 changed:false', async () => {
    const a = await s.req('POST', '/checkpoints', { user_id: 'cp1', state: 'Busy', content: { ticket: 42 } });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ user_id: 'cp1', state: 'Busy', previous_state: null, source: 'client', changed: true, content: { ticket: 42 } });
    expect(a.body.timestamp).toBe(new Date(clock.now()).toISOString());
    const b = await s.req('POST', '/checkpoints', { user_id: 'cp1', state: 'Busy' });
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ changed: false, user_id: 'cp1', state: 'Busy' });
    expect(await timeline('cp1')).toHaveLength(1);
    const st = await s.req('GET', '/status/cp1');
    expect(st.body).toMatchObject({ state: 'Busy', online: true });
  });

  it('a checkpoint moves last_heartbeat to its receipt time whatever its timestamp', async () => {
    const ts = clock.now() - 3600_000;
    await s.req('POST', '/checkpoints', { user_id: 'cp2', state: 'Away', timestamp: ts });
    const st = await s.req('GET', '/status/cp2');
    expect(st.body.last_heartbeat).toBe(new Date(clock.now()).toISOString());
    expect(st.body.state_since).toBe(new Date(ts).toISOString());
  });

  it('a back-fill goes in time order and removes a later checkpoint it makes redundant', async () => {
    const t0 = clock.now() - 600_000;
    await s.req('POST', '/checkpoints', { user_id: 'bf', state: 'Online', timestamp: t0 });
    await s.req('POST', '/checkpoints', { user_id: 'bf', state: 'Busy', timestamp: t0 + 300_000 });
    // Busy from t0+100s: the Busy at t0+300s is now redundant.
    const r = await s.req('POST', '/checkpoints', { user_id: 'bf', state: 'Busy', timestamp: new Date(t0 + 100_000).toISOString() });
    expect(r.status).toBe(201);
    const tl = await timeline('bf');
    expect(tl.map((c: any) => [c.state, c.timestamp])).toEqual([
      ['Online', new Date(t0).toISOString()],
      ['Busy', new Date(t0 + 100_000).toISOString()],
    ]);
    // A back-fill equal to the state in force is not written.
    const same = await s.req('POST', '/checkpoints', { user_id: 'bf', state: 'Online', timestamp: t0 + 50_000 });
    expect(same.status).toBe(200);
  });

  it('rejects timestamps too far in the future or past CK_MAX_BACKFILL with 422 and writes nothing', async () => {
    const future = await s.req('POST', '/checkpoints', { user_id: 'bad1', state: 'Busy', timestamp: clock.now() + 61_000 });
    expect(future.status).toBe(422);
    expect(future.body.errors[0].path).toBe('/timestamp');
    const old = await s.req('POST', '/checkpoints', { user_id: 'bad1', state: 'Busy', timestamp: clock.now() - 8 * 86_400_000 });
    expect(old.status).toBe(422);
    expect((await s.req('GET', '/status/bad1')).status).toBe(404);
  });

  it('an unregistered state is a 422 naming the valid ones', async () => {
    const r = await s.req('POST', '/checkpoints', { user_id: 'bad2', state: 'Sleeping' });
    expect(r.status).toBe(422);
    expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(r.body.detail).toMatch(/Online.*Offline|Offline.*Online/);
    expect(r.body.errors[0].path).toBe('/state');
    expect((await s.req('GET', '/status/bad2')).status).toBe(404);
  });

  it('POST /heartbeats answers per user in one write', async () => {
    await s.req('POST', '/checkpoints', { user_id: 'g2', state: 'Busy' });
    const r = await s.req('POST', '/heartbeats', { user_ids: ['g1', 'g2', 'g1'] });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: any) => [x.user_id, x.state])).toEqual([['g1', 'Online'], ['g2', 'Busy'], ['g1', 'Online']]);
    const big = await s.req('POST', '/heartbeats', { user_ids: Array.from({ length: 10_001 }, (_, i) => `u${i}`) });
    expect(big.status).toBe(422);
  });

  it('POST /heartbeats takes the documented maximum: 10,000 ids of 128 characters, even escaped', async () => {
    // Every character escaped as \uXXXX: the largest JSON such a batch can be.
    const ids = Array.from({ length: 10_000 }, (_, i) => `${String(i).padStart(5, '0')}${'é'.repeat(123)}`);
    const body = JSON.stringify({ user_ids: ids }).replace(/é/g, '\\u00e9');
    expect(body.length).toBeGreaterThan(7 * 1024 * 1024);
    const r = await rawReq(s.url, 'POST', '/heartbeats', body, { key: s.adminKey });
    expect(r.status).toBe(200);
    expect(r.body.results).toHaveLength(10_000);
  });

  it('100 concurrent alternating checkpoints for one user leave no consecutive duplicates', async () => {
    await Promise.all(Array.from({ length: 100 }, (_, i) =>
      s.req('POST', '/checkpoints', { user_id: 'race', state: i % 2 ? 'Busy' : 'Away', timestamp: clock.now() - (i % 7) * 1000 })));
    const tl = await timeline('race');
    for (let i = 1; i < tl.length; i++) expect(tl[i].state).not.toBe(tl[i - 1].state);
    const st = await s.req('GET', '/status/race');
    expect(st.body.state).toBe(tl[tl.length - 1].state);
    expect(st.body.state_since).toBe(tl[tl.length - 1].timestamp);
  });
});
