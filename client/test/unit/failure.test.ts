import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoff, retryDelay } from '../../src/backoff.js';
import { CkError } from '../../src/errors.js';
import { parseRetryAfter } from '../../src/http.js';
import { fakeTime, gaps, setup } from './setup.js';

beforeEach(() => fakeTime());
afterEach(() => vi.useRealTimers());

describe('backoff', () => {
  it('doubles from base, stays within [d/2, d], and stops growing at the cap', () => {
    for (let n = 0; n < 12; n++) {
      const d = Math.min(30_000, 1000 * 2 ** n);
      expect(backoff(n, 1000, 30_000, () => 0)).toBe(d / 2);
      expect(backoff(n, 1000, 30_000, () => 1)).toBe(d);
    }
    expect(backoff(50, 1000, 30_000, () => 0.999)).toBeLessThanOrEqual(30_000);
  });

  it('lets Retry-After win, with at most 10% jitter on top', () => {
    const err = new CkError('http', 'x', { status: 429, retryAfter: 7_000 });
    expect(retryDelay(err, 0, 1000, 30_000, () => 0)).toBe(7_000);
    expect(retryDelay(err, 9, 1000, 30_000, () => 1)).toBeCloseTo(7_700);
    expect(parseRetryAfter('3')).toBe(3_000);
    expect(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString())).toBe(5_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('retries an unreachable ck with growing, capped, jittered delays, then resumes the normal pace', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage, maxBackoff: 16_000 });
    await me.start();
    fake.down = true;
    fake.calls = [];
    await vi.advanceTimersByTimeAsync(200_000);
    // One request per try while down (after the first failure each try asks for /config again first:
    // the server may come back upgraded).
    expect(fake.of('GET', '/config').length).toBe(fake.calls.length - 1);
    const tries = gaps(fake.calls.map((c) => c.at));
    expect(tries.length).toBeGreaterThan(8);
    tries.forEach((g, n) => {
      const d = Math.min(16_000, 1000 * 2 ** n);
      expect(g).toBeGreaterThanOrEqual(d / 2);
      expect(g).toBeLessThanOrEqual(d);
    });
    expect(me.connection).toBe('offline');
    fake.down = false;
    await vi.advanceTimersByTimeAsync(16_000);
    expect(me.connection).toBe('online');
    const t0 = fake.of('POST', '/heartbeat').at(-1)!.at;
    await vi.advanceTimersByTimeAsync(25_000);
    expect(fake.of('POST', '/heartbeat').at(-1)!.at - t0).toBeGreaterThanOrEqual(18_000);
    await me.stop();
  });

  it.each([429, 503])('waits out Retry-After on %i before the next try', async (status) => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    fake.overrides.push({ path: '/heartbeat', status, headers: { 'retry-after': '45' } });
    await vi.advanceTimersByTimeAsync(22_000);
    const failedAt = fake.of('POST', '/heartbeat').at(-1)!.at;
    expect(me.connection).toBe('offline');
    await vi.advanceTimersByTimeAsync(failedAt + 44_900 - Date.now());
    expect(fake.of('POST', '/heartbeat').at(-1)!.at).toBe(failedAt);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.of('POST', '/heartbeat').at(-1)!.at - failedAt).toBeGreaterThanOrEqual(45_000);
    expect(me.connection).toBe('online');
    await me.stop();
  });
});

describe('tokens', () => {
  it('asks getToken at the first request and once more on a 401, then goes on with the new token', async () => {
    let n = 0;
    const getToken = vi.fn(async () => (++n === 1 ? 'expired' : 'good'));
    const { fake, ck, storage } = setup({ getToken });
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(me.connection).toBe('online');
    expect(fake.calls.map((c) => c.headers.authorization)).toEqual(['Bearer expired', 'Bearer good', 'Bearer good']);
    await me.stop();
  });

  it('refreshes once for many concurrent 401s', async () => {
    const getToken = vi.fn(async () => (getToken.mock.calls.length === 1 ? 'old' : 'good'));
    const { fake, ck } = setup({ getToken });
    await ck.http.token();
    await Promise.all([ck.status('a'), ck.status('b'), ck.status('c')]);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(fake.calls.filter((c) => c.headers.authorization === 'Bearer good')).toHaveLength(3);
  });

  it('on a second 401 reports an unauthorized error and stops', async () => {
    const getToken = vi.fn(async () => 'revoked');
    const { fake, ck, storage } = setup({ getToken });
    const me = ck.presence({ userId: 'alice', storage });
    const errors: CkError[] = [];
    me.on('error', (e) => errors.push(e));
    await expect(me.start()).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(errors.map((e) => e.code)).toEqual(['unauthorized']);
    expect(me.connection).toBe('stopped');
    const n = fake.calls.length;
    await vi.advanceTimersByTimeAsync(300_000);
    expect(fake.calls).toHaveLength(n);
  });

  it('a 401 in the middle of a session stops it after one refresh', async () => {
    const getToken = vi.fn(async () => 'good');
    const { fake, ck, storage } = setup({ getToken });
    const me = ck.presence({ userId: 'alice', storage });
    const errors: string[] = [];
    me.on('error', (e) => errors.push(e.code));
    await me.start();
    fake.tokens.clear(); // revoked
    await vi.advanceTimersByTimeAsync(30_000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(errors).toEqual(['unauthorized']);
    expect(me.connection).toBe('stopped');
    await expect(me.set('Busy')).resolves.toBe('queued'); // only remembered for the next start
  });

  it('with a fixed token, a 401 is final at once', async () => {
    const { fake, ck, storage } = setup({ token: 'nope' });
    const me = ck.presence({ userId: 'alice', storage });
    await expect(me.start()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(fake.calls).toHaveLength(1);
  });

  it('a 403 (a token for another user) stops too; a 422 on set() rejects that call only', async () => {
    const { fake, ck, storage } = setup();
    const me = ck.presence({ userId: 'alice', storage });
    await me.start();
    fake.overrides.push({ path: '/checkpoints', status: 422 });
    await expect(me.set('Nope')).rejects.toMatchObject({ code: 'http', status: 422 });
    expect(me.connection).toBe('online');
    fake.overrides.push({ path: '/checkpoints', status: 403 });
    await expect(me.set('Busy')).rejects.toMatchObject({ status: 403 });
    expect(me.connection).toBe('stopped');
  });
});
