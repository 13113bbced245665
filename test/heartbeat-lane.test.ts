import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/http/types.js';
import { BACKENDS, ManualClock, startServer, type TestServer } from './helpers.js';

/**
 * The heartbeat lane answers POST /heartbeat ahead of Fastify. Whatever it takes or leaves, a client
 * must see exactly what the route alone answers: every request here goes to a server with the lane
 * and to one without (CK_HEARTBEAT_LANE=off), on the same clock, and the answers are compared.
 */
describe.each(BACKENDS)('heartbeat lane (%s)', (backend) => {
  const clock = new ManualClock();
  let on: TestServer;
  let off: TestServer;
  beforeAll(async () => {
    on = await startServer(backend, { clock });
    off = await startServer(backend, { clock, env: { CK_HEARTBEAT_LANE: 'off' } });
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  interface Raw {
    body?: string | Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
    /** Which key: the server's admin key (default), a key with these scopes, or none. */
    key?: 'admin' | 'read' | 'ingest' | 'none' | 'unknown';
  }
  const keys = new Map<TestServer, Record<string, string>>();
  const keyOf = async (s: TestServer, which: NonNullable<Raw['key']>) => {
    if (which === 'admin') return s.adminKey;
    if (which === 'unknown') return 'ck_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const own = keys.get(s) ?? {};
    keys.set(s, own);
    return (own[which] ??= await s.key([which as 'read' | 'ingest']));
  };
  const send = async (s: TestServer, r: Raw) => {
    const key = r.key === 'none' ? undefined : await keyOf(s, r.key ?? 'admin');
    const res = await fetch(`${s.url}/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...r.headers },
      body: r.body === undefined || typeof r.body === 'string' ? (r.body ?? '') : new Blob([r.body]),
    });
    const h = (n: string) => res.headers.get(n);
    return {
      status: res.status,
      body: await res.text(),
      headers: {
        'content-type': h('content-type'), 'content-length': h('content-length'), 'cache-control': h('cache-control'),
        'x-content-type-options': h('x-content-type-options'), 'referrer-policy': h('referrer-policy'),
      },
      requestId: h('x-request-id'),
    };
  };
  /** Sends `r` to both servers, expects the same answer, returns it. */
  const both = async (r: Raw) => {
    const a = await send(on, r);
    const b = await send(off, r);
    expect({ ...a, requestId: undefined }).toEqual({ ...b, requestId: undefined });
    expect(a.requestId).toMatch(/^[\w.-]{1,128}$/);
    expect(b.requestId).toMatch(/^[\w.-]{1,128}$/);
    return { ...a, json: a.body ? JSON.parse(a.body) : undefined };
  };
  const laneServed = async () => {
    const text = (await on.req('GET', '/metrics')).body as string;
    return Number(/^ck_heartbeat_lane_total (\d+)/m.exec(text)?.[1]);
  };
  const body = (o: unknown) => JSON.stringify(o);

  it('answers known users itself, byte for byte as the route does', async () => {
    const first = await both({ body: body({ user_id: 'lane-a' }) }); // unknown: written through the route
    expect(first.status).toBe(200);
    const served = await laneServed();
    clock.advance(1000);
    const again = await both({ body: body({ user_id: 'lane-a' }) });
    expect(again.json).toEqual({
      user_id: 'lane-a', state: 'Online', online: true, state_since: first.json.state_since, last_heartbeat: new Date(clock.now()).toISOString(),
    });
    await both({ body: body({ user_id: 'lane-a' }), headers: { 'content-type': 'application/json; charset=utf-8' } });
    await both({ body: body({ user_id: 'lane-a' }), key: 'ingest' });
    await both({ body: body({ user_id: 'lane-a' }), key: 'ingest' });
    expect(await laneServed()).toBeGreaterThanOrEqual(served + 3);
  });

  it('echoes a given x-request-id and makes one up otherwise', async () => {
    const given = await send(on, { body: body({ user_id: 'lane-a' }), headers: { 'x-request-id': 'trace-42.a' } });
    expect(given.requestId).toBe('trace-42.a');
    const made = [await send(on, { body: body({ user_id: 'lane-a' }) }), await send(on, { body: body({ user_id: 'lane-a' }) })];
    expect(made[0]!.requestId).not.toBe(made[1]!.requestId);
    const bad = await send(on, { body: body({ user_id: 'lane-a' }), headers: { 'x-request-id': 'has spaces' } });
    expect(bad.requestId).not.toBe('has spaces');
  });

  it('leaves unusual bodies to the route, which answers them as always', async () => {
    const cases: [Raw, number][] = [
      [{ body: '{"user_id":' }, 400],
      [{ body: body({ user_id: 5 }) }, 422],
      [{ body: body({ user_id: '' }) }, 422],
      [{ body: body({ user_id: 'x'.repeat(129) }) }, 422],
      [{ body: body({ user_id: 'x\u0001y' }) }, 422],
      [{ body: body({}) }, 422],
      [{ body: '[]' }, 422],
      [{ body: '' }, 400],
      [{ body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }, 400],
      [{ body: '{"__proto__":{"x":1},"user_id":"lane-a"}' }, 400],
      [{ body: '{"constructor":{"prototype":{}},"user_id":"lane-a"}' }, 400],
      [{ body: body({ user_id: 'lane-a' }), headers: { 'content-type': 'text/plain' } }, 415],
      // Valid, but not the lane's shape: the route takes them.
      [{ body: body({ user_id: 'lane-a', extra: { nested: [1] } }) }, 200],
      [{ body: ` ${body({ user_id: 'lane-a' })}` }, 200],
      [{ body: `\ufeff${body({ user_id: 'lane-a' })}` }, 200],
      [{ body: body({ user_id: 'lane-a' }), headers: { origin: 'https://app.example' } }, 200],
      [{ body: body({ user_id: 'x'.repeat(128) }) }, 200],
      [{ body: body({ user_id: 'émoji 🎉 user' }) }, 200],
      [{ body: body({ user_id: 'émoji 🎉 user' }) }, 200],
      // Escapes, quotes and raw control characters inside an id.
      [{ body: '{"user_id":"lane-\\u0061"}' }, 200],
      // A known user whose id is, literally, the escape another body spells: the texts must not be confused.
      [{ body: '{"user_id":"x\\\\u0061"}' }, 200],
      [{ body: '{"user_id":"x\\\\u0061"}' }, 200],
      [{ body: '{"user_id":"x\\u0061"}' }, 200],
      [{ body: '{"user_id":"lane-a","x":"y"}' }, 200],
      [{ body: '{"user_id":"lane-\\"a"}' }, 200],
      [{ body: '{"user_id":"lane\ta"}' }, 400],
      [{ body: '{"user_id":"lane-a"} ' }, 200],
      [{ body: '{"user_id":"__proto__"}' }, 200],
      [{ body: '{"user_id":"__proto__"}' }, 200],
    ];
    for (const [r, status] of cases) {
      const res = await both(r);
      expect({ body: r.body?.toString(), status: res.status }).toEqual({ body: r.body?.toString(), status });
      if (status >= 400) expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('leaves unknown, missing and under-scoped credentials to the route', async () => {
    const b = body({ user_id: 'lane-a' });
    expect((await both({ body: b, key: 'none' })).status).toBe(401);
    expect((await both({ body: b, key: 'unknown' })).status).toBe(401);
    expect((await both({ body: b, key: 'read' })).status).toBe(403);
    expect((await both({ body: b, key: 'read' })).status).toBe(403); // a cached key, still without the scope
  });

  it('leaves users whose heartbeat must be written to the route: Offline, unknown, close to expiry', async () => {
    await both({ body: body({ user_id: 'lane-b' }) });
    for (const s of [on, off]) expect((await s.req('POST', '/checkpoints', { user_id: 'lane-b', state: 'Offline' })).status).toBe(201);
    const revived = await both({ body: body({ user_id: 'lane-b' }) });
    expect(revived.json).toMatchObject({ state: 'Online', state_since: new Date(clock.now()).toISOString() });
    await both({ body: body({ user_id: 'lane-b' }) }); // from memory
    for (const s of [on, off]) expect((await s.req('POST', '/checkpoints', { user_id: 'lane-b', state: 'Busy' })).status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const busy = await both({ body: body({ user_id: 'lane-b' }) }); // re-read, then from memory
      expect(busy.json).toMatchObject({ state: 'Busy', online: true, state_since: new Date(clock.now()).toISOString() });
    }
    clock.advance(59_000); // within the timeout, but too close to it for memory: written first
    const late = await both({ body: body({ user_id: 'lane-b' }) });
    expect(late.json).toMatchObject({ state: 'Busy', last_heartbeat: new Date(clock.now()).toISOString() });
    for (const s of [on, off]) {
      const timeline = (await s.req('GET', '/checkpoints?user_id=lane-b')).body.checkpoints.map((c: { state: string }) => c.state);
      expect(timeline).toEqual(['Online', 'Offline', 'Online', 'Busy']);
    }
  });

  it.each([
    ['onRequest', (app: App) => app.addHook('onRequest', (_req, reply, done) => { reply.header('x-tenant', 't1'); done(); })],
    ['preHandler', (app: App) => app.addHook('preHandler', async function audit() {})],
    ['preValidation', (app: App) => app.addHook('preValidation', (_req, _reply, done) => done())],
  ] as const)('turns itself off when a %s hook it does not reproduce runs on the route', async (_phase, extend) => {
    const extended = await startServer(backend, { clock, extend: (app) => void extend(app) });
    try {
      for (let i = 0; i < 3; i++) expect((await extended.req('POST', '/heartbeat', { user_id: 'lane-d' })).status).toBe(200);
      expect((await extended.req('GET', '/metrics')).body).not.toMatch(/^ck_heartbeat_lane_total [1-9]/m);
    } finally {
      await extended.close();
    }
  });

  it('is off while rate limits or CORS are on (they are Fastify hooks)', async () => {
    const limited = await startServer(backend, { clock, env: { CK_RATE_LIMIT: '1000' } });
    try {
      for (let i = 0; i < 3; i++) expect((await limited.req('POST', '/heartbeat', { user_id: 'lane-c' })).status).toBe(200);
      expect((await limited.req('GET', '/metrics')).body).not.toMatch(/^ck_heartbeat_lane_total [1-9]/m);
      const res = await fetch(`${limited.url}/heartbeat`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${limited.adminKey}` }, body: body({ user_id: 'lane-c' }),
      });
      expect(res.headers.get('x-ratelimit-remaining')).not.toBeNull();
    } finally {
      await limited.close();
    }
  });
});
