import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StateEvent, SubscriptionStatus } from '../../src/index.js';
import { SseParser } from '../../src/sse.js';
import { fakeTime, setup } from './setup.js';

beforeEach(() => fakeTime());
afterEach(() => vi.useRealTimers());

const ev = (id: string, user = 'a', state = 'Busy') =>
  `id: ${id}\nevent: state\ndata: ${JSON.stringify({ id, user_id: user, state, previous_state: 'Online', timestamp: '2026-11-20T12:00:00.000Z', source: 'client', content: null })}\n\n`;

function subscribed(opts: Parameters<ReturnType<typeof setup>['ck']['subscribe']>[0] = {}) {
  const t = setup();
  const got: StateEvent[] = [];
  const statuses: SubscriptionStatus[] = [];
  const sub = t.ck.subscribe(opts, (e) => got.push(e));
  sub.on('status', (s) => statuses.push(s));
  return { ...t, sub, got, statuses };
}

describe('subscribe', () => {
  it('asks for the users given and delivers parsed state events', async () => {
    const { fake, sub, got, statuses } = subscribed({ userIds: ['a', 'b c'] });
    await vi.advanceTimersByTimeAsync(0);
    const call = fake.of('GET', '/events')[0]!;
    expect(call.query.getAll('user_id')).toEqual(['a', 'b c']);
    expect(call.headers.accept).toBe('text/event-stream');
    expect(call.headers['last-event-id']).toBeUndefined();
    fake.emit('retry: 2000\n: connected\n\n');
    fake.emit(ev('1').slice(0, 17));
    fake.emit(ev('1').slice(17) + ': keep-alive\n\n' + ev('2', 'b c', 'Away'));
    await vi.advanceTimersByTimeAsync(0);
    expect(got.map((e) => [e.id, e.user_id, e.state])).toEqual([['1', 'a', 'Busy'], ['2', 'b c', 'Away']]);
    expect(statuses).toEqual(['connecting', 'open']);
    sub.close();
    expect(statuses.at(-1)).toBe('closed');
  });

  it('reconnects with Last-Event-ID (opaque) and never delivers an id twice', async () => {
    const { fake, sub, got, statuses } = subscribed();
    await vi.advanceTimersByTimeAsync(0);
    fake.emit('retry: 1000\n\n' + ev('x-7') + ev('x-9'));
    await vi.advanceTimersByTimeAsync(0);
    fake.drop();
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses).toEqual(['connecting', 'open', 'reconnecting']);
    await vi.advanceTimersByTimeAsync(1_000); // the server's retry: the first wait is within [500, 1000]
    const calls = fake.of('GET', '/events');
    expect(calls).toHaveLength(2);
    expect(calls[1]!.headers['last-event-id']).toBe('x-9');
    // A server that replays too much: the repeats are dropped.
    fake.emit(ev('x-7') + ev('x-9') + ev('x-10'));
    await vi.advanceTimersByTimeAsync(0);
    expect(got.map((e) => e.id)).toEqual(['x-7', 'x-9', 'x-10']);
    expect(sub.lastEventId).toBe('x-10');
    expect(statuses.at(-1)).toBe('open');
    sub.close();
  });

  it('backs off while ck is unreachable, with a cap, and resumes', async () => {
    const { fake, sub, got } = subscribed({ maxBackoff: 8_000, lastEventId: '5' });
    fake.down = true;
    await vi.advanceTimersByTimeAsync(60_000);
    const at = fake.of('GET', '/events').map((c) => c.at);
    const waits = at.slice(1).map((t, i) => t - at[i]!);
    waits.forEach((w, n) => {
      const d = Math.min(8_000, 1000 * 2 ** n);
      expect(w).toBeGreaterThanOrEqual(d / 2);
      expect(w).toBeLessThanOrEqual(d);
    });
    expect(waits.slice(-3).every((w) => w >= 4_000)).toBe(true);
    fake.down = false;
    await vi.advanceTimersByTimeAsync(8_000);
    expect(sub.status).toBe('open');
    expect(fake.streams.at(-1)!.call.headers['last-event-id']).toBe('5');
    fake.emit(ev('6'));
    await vi.advanceTimersByTimeAsync(0);
    expect(got.map((e) => e.id)).toEqual(['6']);
    sub.close();
  });

  it('respects Retry-After on 503', async () => {
    const { fake, sub } = subscribed();
    fake.overrides.push({ path: '/events', status: 503, headers: { 'retry-after': '20' } });
    await vi.advanceTimersByTimeAsync(19_000);
    expect(fake.of('GET', '/events')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(fake.of('GET', '/events')).toHaveLength(2);
    sub.close();
  });

  it('reconnects a stream that went silent (no keep-alive) after stallTimeout', async () => {
    const { fake, sub } = subscribed({ stallTimeout: 30_000 });
    await vi.advanceTimersByTimeAsync(20_000);
    fake.emit(': keep-alive\n\n');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(fake.of('GET', '/events')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(12_000);
    expect(fake.of('GET', '/events')).toHaveLength(2);
    sub.close();
  });

  it('reports the stream\'s event: error, and closes for good on 401 after one refresh', async () => {
    const { fake, ck } = setup();
    let n = 0;
    const refreshing = new (ck.constructor as any)({ url: 'http://ck.test', fetch: fake.fetch, getToken: () => (++n === 1 ? 'good' : 'stale') });
    const sub = refreshing.subscribe({}, () => {});
    const errors: string[] = [];
    sub.on('error', (e: any) => errors.push(`${e.code}:${e.message}`));
    await vi.advanceTimersByTimeAsync(0);
    fake.emit('event: error\ndata: {"reason":"client too slow"}\n\n');
    fake.drop();
    fake.tokens.clear();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(errors[0]).toBe('stream:client too slow');
    expect(errors[1]).toMatch(/^unauthorized:/);
    expect(n).toBe(2);
    expect(sub.status).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fake.of('GET', '/events')).toHaveLength(3);
  });
});

describe('SseParser', () => {
  it('parses a stream split at any character (CRLF, CR, LF; comments; retry; ids kept)', () => {
    const text = 'retry: 1500\r\n: comment\r\nid: 7\r\nevent: state\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
      + 'data: x\n\nid: 9\rdata: y\r\r';
    const events: unknown[] = [];
    const parser = new SseParser((e) => events.push(e));
    for (const ch of text) parser.push(ch);
    expect(events).toEqual([
      { type: 'state', data: '{"a":\n1}', id: '7' },
      { type: 'message', data: 'x', id: '7' },
      { type: 'message', data: 'y', id: '9' },
    ]);
    expect(parser.retry).toBe(1500);
  });
});
