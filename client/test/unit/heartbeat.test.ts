import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeTime, gaps, setup } from './setup.js';

beforeEach(() => fakeTime());
afterEach(() => vi.useRealTimers());

describe('heartbeats', () => {
  it('beats at once, then every third of heartbeat_timeout with ±10% jitter', async () => {
    const { fake, ck, storage } = setup();
    fake.config.heartbeat_timeout = 30;
    const me = ck.presence({ userId: 'alice', sessionId: 's1', storage });
    await me.start();
    expect(fake.of('POST', '/heartbeat')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(300_000);
    const beats = fake.of('POST', '/heartbeat');
    const between = gaps(beats.map((b) => b.at));
    expect(between.length).toBeGreaterThan(25);
    for (const g of between) {
      expect(g).toBeGreaterThanOrEqual(9_000);
      expect(g).toBeLessThanOrEqual(11_000);
    }
    expect(new Set(between).size).toBeGreaterThan(5); // jittered, not a fixed period
    expect(beats[0]!.body).toEqual({ user_id: 'alice', session_id: 's1', active: true });
    await me.stop();
  });

  it('falls back to ck defaults and sends no session fields when GET /config is missing', async () => {
    const { fake, ck, storage } = setup();
    fake.sessions = false;
    const me = ck.presence({ userId: 'alice', client: 'web', storage });
    await me.start();
    expect(await ck.config()).toEqual({ heartbeat_timeout: 60, idle_timeout: 300, max_backfill: 604_800, sessions: false });
    await vi.advanceTimersByTimeAsync(120_000);
    const beats = fake.of('POST', '/heartbeat');
    for (const g of gaps(beats.map((b) => b.at))) expect(g).toBeGreaterThanOrEqual(18_000);
    expect(beats.every((b) => JSON.stringify(b.body) === '{"user_id":"alice"}')).toBe(true);
    await me.set('Busy');
    expect(fake.of('POST', '/checkpoints')[0]!.body).toEqual({ user_id: 'alice', state: 'Busy' });
    await expect(me.setManual('DoNotDisturb')).rejects.toMatchObject({ code: 'unsupported' });
    await me.stop();
    expect(fake.calls.filter((c) => c.method === 'DELETE')).toHaveLength(0);
  });

  it('honours heartbeatInterval, and setActive heartbeats at once with the new flag', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', sessionId: 's1', heartbeatInterval: 5_000, storage });
    await me.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.of('POST', '/heartbeat')).toHaveLength(2);
    me.setActive(false);
    await vi.advanceTimersByTimeAsync(0);
    const beats = fake.of('POST', '/heartbeat');
    expect(beats).toHaveLength(3);
    expect(beats[2]!.body.active).toBe(false);
    await me.stop();
  });

  it('announces the state set before start, and again after a gap longer than the timeout', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', sessionId: 's1', storage });
    expect(await me.set('Busy', { content: { call: 42 } })).toBe('queued');
    expect(fake.calls).toHaveLength(0);
    await me.start();
    // The heartbeat first: it (re)creates the session the state belongs to.
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual(['GET /config', 'POST /heartbeat', 'POST /checkpoints']);
    expect(fake.stored[0]).toEqual({ user_id: 'alice', state: 'Busy', content: { call: 42 }, session_id: 's1', active: true });
    fake.down = true;
    await vi.advanceTimersByTimeAsync(90_000);
    fake.down = false;
    await vi.advanceTimersByTimeAsync(40_000);
    expect(fake.stored).toHaveLength(2);
    expect(fake.stored[1]).toMatchObject({ state: 'Busy', content: { call: 42 } });
    expect(fake.stored[1].timestamp).toBeUndefined();
    await me.stop();
  });

  it('set() after a pause longer than the timeout renews the session with a heartbeat first', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    // A laptop asleep: no timer ran, the clock jumped.
    vi.setSystemTime(Date.now() + 120_000);
    fake.calls = [];
    expect(await me.set('Busy')).toBe('sent');
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /heartbeat', 'POST /checkpoints']);
    await me.stop();
  });

  it('a state refused when announced again is reported, and the session goes on', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    const errors: string[] = [];
    me.on('error', (e) => errors.push(`${e.code}:${e.checkpoint?.state}`));
    await me.set('Retired');
    fake.overrides.push({ path: '/checkpoints', status: 422 });
    await me.start();
    expect(errors).toEqual(['rejected:Retired']);
    expect(me.connection).toBe('online');
    await me.stop();
  });

  it('stop() ends the session with DELETE and beats no more', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'a/b', sessionId: 's 1', storage });
    const seen: string[] = [];
    me.on('connection', (c) => seen.push(c));
    await me.start();
    await me.stop();
    expect(fake.of('DELETE', '/users/a%2Fb/sessions/s%201')).toHaveLength(1);
    const n = fake.calls.length;
    await vi.advanceTimersByTimeAsync(600_000);
    expect(fake.calls).toHaveLength(n);
    expect(seen).toEqual(['connecting', 'online', 'stopped']);
  });

  it('emits status only when it changes, and setManual/clearManual use the presence routes', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage, heartbeatInterval: 1000 });
    const states: string[] = [];
    me.on('status', (s) => states.push(s.state));
    await me.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.of('POST', '/heartbeat').length).toBeGreaterThan(4);
    expect(states).toEqual(['Online']);
    const s = await me.setManual('DoNotDisturb', { until: Date.parse('2026-11-20T13:00:00Z') });
    expect(fake.of('PUT', '/users/alice/presence')[0]!.body).toEqual({ state: 'DoNotDisturb', until: '2026-11-20T13:00:00.000Z' });
    expect(s.manual).toEqual({ state: 'DoNotDisturb', until: '2026-11-20T13:00:00.000Z' });
    expect(states).toEqual(['Online', 'DoNotDisturb']);
    await me.clearManual();
    expect(fake.of('DELETE', '/users/alice/presence')).toHaveLength(1);
    await me.stop();
  });
});
