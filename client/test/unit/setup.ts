import { vi } from 'vitest';
import { CkClient } from '../../src/index.js';
import { FakeCk, MemoryStorage } from './fake-ck.js';

/** Fake timers and Date, leaving setImmediate and microtasks real (Response bodies need them). */
export function fakeTime(at = Date.parse('2026-11-20T12:00:00Z')) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: at });
}

export function setup(opts: { token?: string; getToken?: () => string | Promise<string> } = { token: 'good' }) {
  const fake = new FakeCk();
  const storage = new MemoryStorage();
  const ck = new CkClient({ url: 'http://ck.test', fetch: fake.fetch, ...opts });
  return { fake, storage, ck };
}

/** Milliseconds between consecutive calls. */
export const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]!);
