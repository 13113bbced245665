import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, ManualClock, startServer, type TestServer } from './helpers.js';
import { expectProblem, rawReq } from './problem.js';

/** Tables a rejected request must leave untouched. */
const TABLES = ['checkpoints', 'user_sessions', 'user_settings', 'api_keys', 'state_types'];

describe.each(BACKENDS)('errors are problem+json and write nothing (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    s = await startServer(backend, { clock });
    await s.req('POST', '/checkpoints', { user_id: 'existing', state: 'Busy' });
  });
  afterAll(() => s?.close());

  const counts = async () => {
    await s.app.ck.coalescer.flush();
    const out: Record<string, number> = {};
    for (const t of TABLES) out[t] = (await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).rows[0]!.n;
    return out;
  };
  /** Sends, expects a problem with `status`, and checks that no table changed. */
  const rejected = async (status: number, method: string, path: string, body?: string | Uint8Array, type?: string) => {
    const before = await counts();
    const r = await rawReq(s.url, method, path, body, { key: s.adminKey, type });
    expectProblem(r, status);
    expect(await counts()).toEqual(before);
    return r;
  };

  const WRITES: [string, string][] = [
    ['POST', '/heartbeat'], ['POST', '/heartbeats'], ['POST', '/checkpoints'], ['POST', '/keys'],
    ['POST', '/states'], ['POST', '/tokens'], ['PUT', '/users/someone'],
  ];

  it.each(WRITES)('%s %s: malformed JSON, an empty body and prototype keys are 400', async (method, path) => {
    const malformed = await rejected(400, method, path, '{"user_id": "a",');
    expect(malformed.body.detail).toMatch(/malformed JSON/);
    await rejected(400, method, path, '');
    await rejected(400, method, path, '{"user_id":"a","__proto__":{"admin":true}}');
    await rejected(400, method, path, '{"user_id":"a","constructor":{"prototype":{"admin":true}}}');
  });

  it.each(WRITES)('%s %s: anything but JSON is 415', async (method, path) => {
    await rejected(415, method, path, 'user_id=a', 'text/plain');
    await rejected(415, method, path, 'user_id=a', 'application/x-www-form-urlencoded');
    await rejected(415, method, path, '<user_id>a</user_id>', 'application/xml');
  });

  // Batches take 10,000 ids of 128 characters, escaped (8 MiB); everything else 1 MiB.
  const limitOf = (path: string) => (path === '/heartbeats' ? 8 : 1) * 1024 * 1024;

  it.each(WRITES)('%s %s: a body over the route\'s limit is 413', async (method, path) => {
    const big = JSON.stringify({ user_id: 'big', content: { pad: 'x'.repeat(limitOf(path)) } });
    const r = await rejected(413, method, path, big);
    expect(r.body.code).toBe('content_too_large');
  });


  it.each(WRITES)('%s %s: invalid UTF-8 is 400', async (method, path) => {
    const bytes = new Uint8Array([...Buffer.from('{"user_id":"'), 0xc3, 0x28, 0xff, ...Buffer.from('"}')]);
    const r = await rejected(400, method, path, bytes);
    expect(r.body.detail).toMatch(/UTF-8/);
  });

  it.each(WRITES)('%s %s: JSON nested 10,000 levels deep is 400', async (method, path) => {
    await rejected(400, method, path, `{"user_id":"deep","content":${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
  });

  it.each([
    ['POST', '/heartbeat', { user_id: 5 }, ['/user_id']],
    ['POST', '/heartbeat', {}, ['/user_id']],
    ['POST', '/heartbeat', { user_id: 'x'.repeat(129) }, ['/user_id']],
    ['POST', '/heartbeat', { user_id: 'a\u0000b' }, ['/user_id']],
    ['POST', '/heartbeat', [{ user_id: 'a' }], ['/']],
    ['POST', '/heartbeats', { user_ids: [] }, ['/user_ids']],
    ['POST', '/heartbeats', { user_ids: ['ok', 7] }, ['/user_ids/1']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Sleeping' }, ['/state']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Busy', timestamp: 'yesterday' }, ['/timestamp']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Busy', timestamp: 1e300 }, ['/timestamp']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Busy', content: [1, 2] }, ['/content']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Busy', content: { note: 'nul \u0000 here' } }, ['/content']],
    ['POST', '/checkpoints', { user_id: 'a', state: 'Busy', content: { pad: 'x'.repeat(17 * 1024) } }, ['/content']],
    ['POST', '/checkpoints', { state: 7 }, ['/user_id', '/state']],
    ['POST', '/states', { name: "x'; DROP TABLE checkpoints; --", online: true }, ['/name']],
    ['POST', '/states', { name: 'Lunch', online: 'yes', color: 'red' }, ['/online', '/color']],
    ['POST', '/keys', { name: 'k', scopes: ['root'] }, ['/scopes/0']],
    ['POST', '/keys', { name: 'k\u0000', scopes: ['read'] }, ['/name']],
    ['PUT', '/users/someone', { timezone: 'Mars/Olympus' }, ['/timezone']],
  ] as const)('%s %s %j is 422 naming %j', async (method, path, body, paths) => {
    const r = await rejected(422, method, path, JSON.stringify(body));
    expect(r.body.title).toBe('Unprocessable Content');
    expect(r.body.errors.map((e: any) => e.path)).toEqual(expect.arrayContaining([...paths]));
    for (const e of r.body.errors) expect(e).toEqual({ path: expect.any(String), message: expect.any(String), location: 'body' });
  });

  it.each([
    ['/status?state=Online&limit=0', '/limit', 'querystring'],
    ['/status?state=Online&limit=abc', '/limit', 'querystring'],
    ['/status?state=Online&cursor=not-a-cursor', '/cursor', 'querystring'],
    ['/checkpoints?user_id=existing&from=noon', '/from', 'querystring'],
    ['/checkpoints', '/user_id', 'querystring'],
    [`/status/${'x'.repeat(129)}`, '/user_id', 'params'],
    ['/keys/NOT-HEX', '/id', 'params'],
  ])('GET-like %s is 422 at %s in %s', async (path, at, location) => {
    const r = await rawReq(s.url, path.startsWith('/keys/') ? 'DELETE' : 'GET', path, undefined, { key: s.adminKey });
    expectProblem(r, 422);
    expect(r.body.errors).toContainEqual(expect.objectContaining({ path: at, location }));
  });

  it('unknown routes and methods are 404 problem+json', async () => {
    const r = await rawReq(s.url, 'GET', '/nope?x=1', undefined, { key: s.adminKey });
    expectProblem(r, 404);
    expect(r.body.instance).toBe('/nope');
    expectProblem(await rejected(404, 'DELETE', '/heartbeat'), 404);
    expectProblem(await rawReq(s.url, 'GET', '/status/a/b'), 404);
  });

  it('router rejections are problem+json: a malformed %-escape is 400, an over-long path param 414', async () => {
    expectProblem(await rawReq(s.url, 'GET', '/status/%E0%A4%A', undefined, { key: s.adminKey }), 400);
    expectProblem(await rawReq(s.url, 'GET', `/status/${'x'.repeat(5000)}`, undefined, { key: s.adminKey }), 414);
    // 128 characters of 4-byte UTF-8, percent-encoded, is a valid id: routed, and simply unknown.
    expectProblem(await rawReq(s.url, 'GET', `/status/${encodeURIComponent('😀'.repeat(64))}`, undefined, { key: s.adminKey }), 404);
  });

  it('401 and 403 are problem+json too', async () => {
    expectProblem(await rawReq(s.url, 'GET', '/status/existing'), 401);
    expectProblem(await rawReq(s.url, 'GET', '/status/existing', undefined, { key: await s.key(['ingest']) }), 403);
  });

  it('the rejected writes left the one user written at the start', async () => {
    const c = await counts();
    expect(c.user_sessions).toBe(1);
    expect(c.checkpoints).toBe(1);
  });
});
