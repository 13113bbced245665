import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CkError } from '../../src/errors.js';
import { fakeTime, setup } from './setup.js';

beforeEach(() => fakeTime());
afterEach(() => vi.useRealTimers());

describe('offline queue', () => {
  it('keeps checkpoints made while ck is down, with their time, and sends them in order when it is back', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', sessionId: 's1', storage });
    await me.start();
    expect(await me.set('Busy')).toBe('sent');
    expect(fake.stored[0].timestamp).toBeUndefined(); // live: the server's clock
    fake.down = true;
    const t1 = Date.now();
    expect(await me.set('Away', { content: { n: 1 } })).toBe('queued');
    await vi.advanceTimersByTimeAsync(5_000);
    const t2 = Date.now();
    expect(await me.set('Busy', { content: { n: 2 } })).toBe('queued');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await me.set('Online')).toBe('queued');
    expect(me.pending.map((c) => c.state)).toEqual(['Away', 'Busy', 'Online']);
    expect(JSON.parse(storage.getItem('ck-client:queue:alice:s1')!)).toHaveLength(3);
    const beatsWhileDown = fake.of('POST', '/heartbeat').length;

    await vi.advanceTimersByTimeAsync(120_000);
    fake.down = false;
    await vi.advanceTimersByTimeAsync(31_000);
    // The queued three in order, then (after a gap longer than the timeout, which ended the session on the
    // server) the current state announced again, at the server's now.
    expect(fake.stored.slice(1).map((c) => [c.state, c.content?.n])).toEqual([['Away', 1], ['Busy', 2], ['Online', undefined], ['Online', undefined]]);
    expect(fake.stored[4].timestamp).toBeUndefined();
    expect(fake.stored[1].timestamp).toBe(t1);
    expect(fake.stored[2].timestamp).toBe(t2);
    expect(fake.stored[3].timestamp).toBe(t2 + 5_000);
    expect(fake.stored.slice(1).every((c) => c.session_id === 's1')).toBe(true);
    expect(me.pending).toHaveLength(0);
    expect(storage.getItem('ck-client:queue:alice:s1')).toBeNull();
    // Heartbeats are never queued: one per try while down, none replayed afterwards.
    const after = fake.of('POST', '/heartbeat').filter((b) => b.at >= Date.now() - 31_000);
    expect(after.length).toBeLessThanOrEqual(2);
    expect(beatsWhileDown).toBeLessThan(5);
    await me.stop();
  });

  it('queues a checkpoint whose send failed on the network, and retries it first', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    fake.overrides.push({ path: '/checkpoints', status: 503, headers: { 'retry-after': '2' } });
    expect(await me.set('Busy')).toBe('queued');
    expect(me.connection).toBe('offline');
    await vi.advanceTimersByTimeAsync(2_300);
    expect(fake.stored.map((c) => c.state)).toEqual(['Busy']);
    expect(me.connection).toBe('online');
    await me.stop();
  });

  it('a checkpoint waiting behind a slow request keeps the time set() was called', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage, heartbeatInterval: 10_000 });
    await me.start();
    fake.delay = 5_000;
    await vi.advanceTimersByTimeAsync(10_000); // a heartbeat is now on its way, slowly
    const called = Date.now();
    const result = me.set('Busy');
    await vi.advanceTimersByTimeAsync(1_000);
    fake.down = true;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await result).toBe('queued');
    expect(me.pending[0]!.timestamp).toBe(called);
    fake.delay = 0;
    fake.down = false;
    await vi.advanceTimersByTimeAsync(10_000); // a retry already under way may still take its 5 s
    expect(fake.stored.at(-1)).toMatchObject({ state: 'Busy', timestamp: called });
    await me.stop();
  });

  it('reports checkpoints older than max_backfill instead of sending them', async () => {
    const { fake, ck, storage } = setup();
    fake.config.max_backfill = 3_600;
    const me = ck.presence({ userId: 'alice', storage });
    const errors: CkError[] = [];
    me.on('error', (e) => errors.push(e));
    await me.start();
    fake.down = true;
    await me.set('Busy');
    await vi.advanceTimersByTimeAsync(1_800_000);
    await me.set('Away');
    await vi.advanceTimersByTimeAsync(2_400_000); // Busy is now 70 min old, Away 40
    fake.down = false;
    await vi.advanceTimersByTimeAsync(31_000);
    expect(fake.stored.map((c) => [c.state, c.timestamp === undefined])).toEqual([['Away', false], ['Away', true]]);
    expect(errors.map((e) => [e.code, e.checkpoint?.state])).toEqual([['backfill_expired', 'Busy']]);
    await me.stop();
  });

  it('drops a queued checkpoint ck refuses (422), reports it, and sends the rest', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    const errors: CkError[] = [];
    me.on('error', (e) => errors.push(e));
    await me.start();
    fake.down = true;
    await me.set('Retired');
    await me.set('Busy');
    fake.down = false;
    fake.overrides.push({ path: '/checkpoints', status: 422 });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors.map((e) => [e.code, e.status, e.checkpoint?.state])).toEqual([['rejected', 422, 'Retired']]);
    expect(fake.stored.map((c) => c.state)).toEqual(['Busy']);
    await me.stop();
  });

  it('survives a reload: the queue comes back from storage and is sent at start', async () => {
    const { fake, ck, storage } = setup();
    const first = ck.presence({ userId: 'alice', sessionId: 'tab', storage });
    await first.start();
    fake.down = true;
    const t = Date.now();
    await first.set('Busy');
    await first.stop();
    expect(fake.of('DELETE', '/users/alice/sessions/tab')).toHaveLength(0); // offline: nothing to send it to
    fake.down = false;
    await vi.advanceTimersByTimeAsync(10_000);

    const again = ck.presence({ userId: 'alice', sessionId: 'tab', storage });
    expect(again.pending.map((c) => c.state)).toEqual(['Busy']);
    await again.start();
    expect(fake.stored).toEqual([expect.objectContaining({ state: 'Busy', timestamp: t })]);
    await again.stop();
  });

  it('stop() sends what is queued when ck is reachable again', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    fake.overrides.push({ path: '/checkpoints', status: 502 });
    await me.set('Busy');
    await me.stop();
    expect(fake.stored.map((c) => c.state)).toEqual([]); // offline when stopped: kept for the next start
    expect(me.pending).toHaveLength(1);
    await me.start();
    expect(fake.stored.map((c) => c.state)).toEqual(['Busy', 'Busy']); // the queued one, then the state announced
    await me.stop();
  });

  it('corrects queued timestamps by the clock skew seen in heartbeat answers', async () => {
    const { fake, ck, storage } = setup();
    const realFetch = fake.fetch;
    // The server's clock runs 5 minutes ahead of this device's.
    fake.fetch = async (input, init) => {
      const res = await realFetch(input, init);
      if (!String(input).endsWith('/heartbeat') || !res.ok) return res;
      const body = await res.json();
      return new Response(JSON.stringify({ ...body, last_heartbeat: new Date(Date.now() + 300_000).toISOString() }), { status: 200 });
    };
    const skewed = new (ck.constructor as any)({ url: 'http://ck.test', token: 'good', fetch: fake.fetch });
    const me = skewed.presence({ userId: 'alice', storage });
    await me.start();
    fake.down = true;
    const t = Date.now();
    await me.set('Busy');
    fake.down = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(fake.stored[0].timestamp).toBe(t + 300_000);
    await me.stop();
  });
});
