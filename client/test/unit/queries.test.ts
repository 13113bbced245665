import { describe, expect, it } from 'vitest';
import { CkClient } from '../../src/index.js';
import { type Call, json } from './fake-ck.js';

function client(answer: (c: Call) => Response) {
  const calls: Call[] = [];
  const ck = new CkClient({
    url: 'http://ck.test/', token: 't',
    fetch: async (input, init = {}) => {
      const url = new URL(String(input));
      const c = { method: init.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: init.headers as any, body: undefined, at: 0 };
      calls.push(c);
      return answer(c);
    },
  });
  return { ck, calls };
}

const status = (user_id: string) => ({ user_id, state: 'Online', online: true, state_since: 'x', last_heartbeat: 'y' });

describe('queries', () => {
  it('status: one user (null when unknown), or many in batches of 1000', async () => {
    const { ck, calls } = client((c) => {
      if (c.path === '/status/nobody') return json(404, { status: 404, detail: 'no user' });
      if (c.path.startsWith('/status/')) return json(200, status(decodeURIComponent(c.path.slice(8))));
      return json(200, { users: c.query.getAll('user_id').filter((u) => u !== 'u7').map(status) });
    });
    expect(await ck.status('a b')).toMatchObject({ user_id: 'a b' });
    expect(calls[0]!.path).toBe('/status/a%20b');
    expect(await ck.status('nobody')).toBeNull();
    const ids = Array.from({ length: 2500 }, (_, i) => `u${i}`);
    const got = await ck.status(ids);
    expect(got).toHaveLength(2499);
    expect(calls.slice(2).map((c) => c.query.getAll('user_id').length)).toEqual([1000, 1000, 500]);
    expect(calls[0]!.headers.authorization).toBe('Bearer t');
  });

  it('timeline follows next_cursor and sends times as RFC 3339', async () => {
    const { ck, calls } = client((c) => {
      const cursor = c.query.get('cursor');
      return json(200, {
        user_id: 'a', next_cursor: cursor ? null : 'p2',
        checkpoints: [{ id: cursor ? '2' : '1', state: 'Online', timestamp: 't', duration_ms: 1, open: !!cursor, content: null, source: 'client', received_at: 't' }],
      });
    });
    const entries = await ck.timeline('a', { from: new Date('2026-11-20T00:00:00Z'), to: Date.parse('2026-11-21T00:00:00Z'), pageSize: 1 });
    expect(entries.map((e) => e.id)).toEqual(['1', '2']);
    expect(calls[0]!.query.toString()).toBe('user_id=a&from=2026-11-20T00%3A00%3A00.000Z&to=2026-11-21T00%3A00%3A00.000Z&limit=1');
    expect(calls[1]!.query.get('cursor')).toBe('p2');
  });

  it('summaries passes dates, tz and day_start through', async () => {
    const { ck, calls } = client(() => json(200, { user_id: 'a', days: [] }));
    await ck.summaries('a', { from: '2026-11-01', to: '2026-11-07', tz: 'Europe/Berlin', dayStart: '04:00' });
    expect(calls[0]!.query.toString()).toBe('user_id=a&from=2026-11-01&to=2026-11-07&tz=Europe%2FBerlin&day_start=04%3A00');
  });

  it('errors carry the status and the problem+json body', async () => {
    const { ck } = client(() => json(422, { type: 'about:blank', title: 'Unprocessable', status: 422, detail: 'tz: unknown zone', code: 'invalid' }));
    await expect(ck.summaries('a', { from: '2026-11-01', to: '2026-11-02', tz: 'Mars/Olympus' })).rejects.toMatchObject({
      name: 'CkError', code: 'http', status: 422, problem: { detail: 'tz: unknown zone', code: 'invalid' }, retriable: false,
    });
  });

  it('a request that gets no answer in time is a network error', async () => {
    const ck = new CkClient({
      url: 'http://ck.test', token: 't', timeout: 50,
      fetch: (_i, init) => new Promise((_r, reject) => init!.signal!.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))),
    });
    await expect(ck.status('a')).rejects.toMatchObject({ code: 'network', status: 0, retriable: true, message: 'GET /status/a: timed out' });
  });

  it('heartbeats posts user_ids in batches of 10,000', async () => {
    const bodies: any[] = [];
    const ck = new CkClient({
      url: 'http://ck.test', token: 't',
      fetch: async (_i, init) => {
        const b = JSON.parse(String(init!.body));
        bodies.push(b);
        return json(200, { results: b.user_ids.map(status) });
      },
    });
    const ids = Array.from({ length: 12_345 }, (_, i) => `g${i}`);
    const got = await ck.heartbeats(ids);
    expect(bodies.map((b) => b.user_ids.length)).toEqual([10_000, 2_345]);
    expect(got.map((s) => s.user_id)).toEqual(ids);
  });
});
