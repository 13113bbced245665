import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, startServer, type TestServer } from './helpers.js';
import { expectProblem, rawReq } from './problem.js';

const SECRET = 'ratelimit-test-secret-0123456789abcdef';
const APP = 'https://app.example';

/** fetch with arbitrary headers; JSON body parsed when there is one. */
async function call(s: TestServer, method: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(s.url + path, { method, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

const expectSecurityHeaders = (h: Headers) => {
  expect(h.get('x-content-type-options')).toBe('nosniff');
  expect(h.get('referrer-policy')).toBe('no-referrer');
  expect(h.get('cache-control')).toBe('no-store');
};

describe.each(BACKENDS)('rate limits (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    // A window far longer than the test: nothing here depends on timing.
    s = await startServer(backend, { env: { CK_RATE_LIMIT: '3', CK_RATE_LIMIT_WINDOW: '3600', CK_TOKEN_SECRET: SECRET, CK_CORS_ORIGINS: APP } });
  });
  afterAll(() => s?.close());

  it('each key has its own budget; the next request is a 429 problem+json with Retry-After', async () => {
    const [a, b] = [await s.key(['read', 'ingest']), await s.key(['read'])];
    for (let i = 0; i < 3; i++) {
      const r = await call(s, 'GET', '/states', bearer(a));
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBe('3');
      expect(r.headers.get('x-ratelimit-remaining')).toBe(String(2 - i));
    }
    const over = await call(s, 'GET', '/states', { ...bearer(a), origin: APP });
    expectProblem(over, 429);
    expect(over.body.title).toBe('Too Many Requests');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(over.headers.get('access-control-allow-origin')).toBe(APP);
    expect(over.headers.get('access-control-expose-headers')).toMatch(/retry-after/);
    expectSecurityHeaders(over.headers);
    expect((await call(s, 'GET', '/states', bearer(b))).status).toBe(200);
  });

  it('a limited write writes nothing', async () => {
    const k = await s.key(['ingest']);
    for (let i = 0; i < 3; i++) expect((await s.req('POST', '/heartbeat', { user_id: `rl${i}` }, k)).status).toBe(200);
    expectProblem(await s.req('POST', '/heartbeat', { user_id: 'rl-over' }, k), 429);
    await s.app.ck.coalescer.flush();
    const { rows } = await s.db.query(`SELECT 1 FROM user_sessions WHERE user_id = 'rl-over'`);
    expect(rows).toHaveLength(0);
  });

  it('tokens share one budget per user', async () => {
    const admin = await s.key(['admin']); // three requests: within its own budget
    const issue = async (user: string) => (await s.req('POST', '/tokens', { user_id: user, scopes: ['read'] }, admin)).body.token as string;
    const [t1, t2, other] = [await issue('ann'), await issue('ann'), await issue('ben')];
    expect((await call(s, 'GET', '/states', bearer(t1))).status).toBe(200);
    expect((await call(s, 'GET', '/states', bearer(t2))).status).toBe(200);
    expect((await call(s, 'GET', '/states', bearer(t1))).status).toBe(200);
    expectProblem(await call(s, 'GET', '/states', bearer(t2)), 429);
    expect((await call(s, 'GET', '/states', bearer(other))).status).toBe(200);
  });

  it('unauthenticated requests and made-up keys share the per-IP budget; probes are exempt', async () => {
    const fake = (i: number) => `ck_${String(i).padStart(12, '0')}_${'A'.repeat(43)}`;
    expect((await call(s, 'GET', '/states')).status).toBe(401);
    expect((await call(s, 'GET', '/states', bearer(fake(1)))).status).toBe(401);
    expect((await call(s, 'GET', '/openapi.json', bearer('garbage'))).status).toBe(200);
    expectProblem(await call(s, 'GET', '/states', bearer(fake(2))), 429);
    expectProblem(await call(s, 'GET', '/openapi.json'), 429);
    for (let i = 0; i < 5; i++) {
      expect((await call(s, 'GET', '/healthz')).status).toBe(200);
      expect((await call(s, 'GET', '/readyz')).status).toBe(200);
    }
    // A real key still has its own budget.
    expect((await call(s, 'GET', '/states', bearer(await s.key(['read'])))).status).toBe(200);
  });
});

describe.each(BACKENDS)('CORS and security headers (%s)', (backend) => {
  let on: TestServer;
  let off: TestServer;
  beforeAll(async () => {
    on = await startServer(backend, { env: { CK_CORS_ORIGINS: `${APP}, https://admin.example` } });
    off = await startServer(backend);
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  it('CK_CORS_ORIGINS allows exactly the listed origins', async () => {
    const ok = await call(on, 'GET', '/states', { ...bearer(on.adminKey), origin: 'https://admin.example' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://admin.example');
    expect(ok.headers.get('vary')).toMatch(/origin/i);
    const evil = await call(on, 'GET', '/states', { ...bearer(on.adminKey), origin: 'https://evil.example' });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('the event stream carries the CORS and security headers too', async () => {
    const ac = new AbortController();
    const res = await fetch(`${on.url}/events`, { headers: { ...bearer(on.adminKey), origin: APP }, signal: ac.signal });
    try {
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(res.headers.get('access-control-allow-origin')).toBe(APP);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toMatch(/no-store/);
    } finally {
      ac.abort();
    }
  });

  it('answers preflights for the listed origins with the methods and headers the API uses', async () => {
    const pre = await fetch(`${on.url}/heartbeat`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(APP);
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('is off by default: no CORS headers, and a preflight is a 404', async () => {
    const r = await call(off, 'GET', '/states', { ...bearer(off.adminKey), origin: APP });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await call(off, 'OPTIONS', '/heartbeat', { origin: APP, 'access-control-request-method': 'POST' });
    expectProblem(pre, 404);
  });

  it('rate limiting is off by default (CK_RATE_LIMIT=0)', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await call(off, 'GET', '/states', bearer(off.adminKey));
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBeNull();
    }
  });

  it('every API response carries nosniff, no-referrer and no-store', async () => {
    const responses = [
      await call(off, 'GET', '/states', bearer(off.adminKey)),
      await call(off, 'GET', '/states'),
      await call(off, 'GET', '/states', bearer(await off.key(['ingest']))),
      await call(off, 'GET', '/no-such-route'),
      await call(off, 'GET', '/status/%E0%A4%A', bearer(off.adminKey)),
      await call(off, 'GET', '/healthz'),
      await call(off, 'GET', '/openapi.json'),
      await rawReq(off.url, 'POST', '/heartbeat', '{"user_id":', { key: off.adminKey }),
      await rawReq(off.url, 'POST', '/heartbeat', '{"user_id":"h"}', { key: off.adminKey }),
    ];
    for (const r of responses) expectSecurityHeaders(r.headers);
  });
});
