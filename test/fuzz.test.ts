import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, ManualClock, startServer, type TestServer } from './helpers.js';
import { arbitraryFor, type Hints, hostileFor, nastyValue, type Schema } from './schema-arbitrary.js';

/**
 * Every documented endpoint, fed requests generated from its own schemas and bent out of shape, plus
 * hand-picked hostile bodies, paths and query strings. Never a 500; every error is problem+json; a
 * rejected request writes nothing.
 */

interface Endpoint {
  method: string;
  path: string;
  params: Record<string, Schema>;
  query: Record<string, Schema>;
  required: string[];
  body?: Schema;
}

const RUNS = 50;
const TABLES = ['checkpoints', 'user_sessions', 'user_settings', 'api_keys', 'state_types'];

/** The API as it documents itself right now (GET /openapi.json). */
async function endpoints(): Promise<Endpoint[]> {
  const s = await startServer('pglite');
  try {
    const spec = (await s.req('GET', '/openapi.json')).body;
    const out: Endpoint[] = [];
    for (const [path, ops] of Object.entries<Record<string, any>>(spec.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        const of = (where: string) => Object.fromEntries((op.parameters ?? []).filter((p: any) => p.in === where).map((p: any) => [p.name, p.schema]));
        const required = (op.parameters ?? []).filter((p: any) => p.in === 'query' && p.required).map((p: any) => p.name);
        out.push({
          method: method.toUpperCase(), path, params: of('path'), query: of('query'), required,
          body: op.requestBody?.content?.['application/json']?.schema,
        });
      }
    }
    return out;
  } finally {
    await s.close();
  }
}

const ENDPOINTS = await endpoints();

const DEEP = 10_000;
/** Bodies no schema would generate: broken bytes, absurd nesting and numbers, prototype keys. */
const rawBody = fc.constantFrom<string | Uint8Array>(
  `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`,
  `${'{"a":'.repeat(DEEP)}1${'}'.repeat(DEEP)}`,
  `{"user_id":"u","content":${'['.repeat(DEEP)}${']'.repeat(DEEP)}}`,
  new Uint8Array([0x7b, 0x22, 0x75, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0xff, 0xfe, 0x22, 0x7d]),
  new Uint8Array([...Buffer.from('{"user_id":"a'), 0x00, ...Buffer.from('b"}')]),
  '{"user_id":1e400,"ttl":1e400,"limit":-1e400}',
  '{"user_id":"alice","state":"Busy","content":{"a\\u0000":"\\u0000","b":1e400}}',
  '{"user_id":"a","__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"admin":true}}}',
  '{"user_id":"a","user_id":"b"}',
  '\ufeff{"user_id":"bom"}',
  '', '{', 'null', '"text"', '12', '[]', '[{"user_id":"a"}]', 'true',
);

/** Path segments, already encoded: valid-looking, hostile, or broken escapes. */
const rawSegment = fc.constantFrom('%E0%A4%A', '%00', '%ZZ', '%ED%A0%80', '..', '%2F', 'x'.repeat(3000), '%F0%9F%98%80'.repeat(129));
/** Query strings the schema cannot describe. */
const rawQuery = fc.constantFrom(
  'limit=1e400', 'limit=-1', 'limit=1.5', 'user_id=%00', 'user_id=%E0%A4%A', 'cursor=%ZZ', 'from=99999999999999999999',
  '__proto__=1', 'constructor=x', 'user_id[]=a', `user_id=${'a'.repeat(5000)}`, 'to=2026-02-30', 'tz=..%2F..%2Fetc',
  'last_event_id=99999999999999999999', 'state=Online&user_id=a',
);

const NOW = Date.parse('2026-11-20T12:00:00.000Z'); // the ManualClock's default
const users = ['alice', 'bob', 'carol'];
const BASE_HINTS: Hints = {
  user_id: users,
  user_ids: [users, ['alice'], ['bob', 'carol']],
  state: ['Online', 'Away', 'Busy', 'DoNotDisturb', 'Offline'],
  states: [['Busy'], null],
  timestamp: [NOW, NOW - 60_000, new Date(NOW - 3600_000).toISOString()],
  from: ['2026-11-19'],
  to: ['2026-11-20'],
  cursor: [undefined],
  limit: [1, 2, 5],
  timezone: ['Europe/Berlin', 'UTC', 'America/New_York'],
  tz: ['Asia/Tokyo', 'UTC'],
  url: ['http://127.0.0.1:9/hook'], // refused at once: deliveries fail fast, and nothing leaves the machine
};
/** Where one name means another thing: the timeline's from/to are instants, not dates. */
const PATH_HINTS: Record<string, Hints> = {
  '/checkpoints': { from: ['2026-11-20T11:00:00Z', String(NOW - 3600_000)], to: ['2026-11-20T12:00:00Z', String(NOW)] },
};

/** Percent-encoding; a lone surrogate (which encodeURIComponent refuses) goes out as its WTF-8 bytes. */
const enc = (v: unknown) => [...(typeof v === 'string' ? v : JSON.stringify(v) ?? '')].map((c) => {
  const u = c.charCodeAt(0);
  if (c.length > 1 || u < 0xd800 || u > 0xdfff) return encodeURIComponent(c);
  return [0xe0 | (u >> 12), 0x80 | ((u >> 6) & 63), 0x80 | (u & 63)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
}).join('');

function requestFor(e: Endpoint) {
  const HINTS = { ...BASE_HINTS, ...PATH_HINTS[e.path] };
  const segment = (s: Schema, k: string) => fc.oneof({ weight: 4, arbitrary: hostileFor(s, HINTS, k).map(enc) }, { weight: 1, arbitrary: rawSegment });
  const params = fc.record(Object.fromEntries(Object.entries(e.params).map(([k, s]) => [k, segment(s, k)])));
  const pairs = (gen: (s: Schema, k: string) => fc.Arbitrary<unknown>, requiredKeys: string[]) =>
    fc.record(Object.fromEntries(Object.entries(e.query).map(([k, s]) => [k, gen(s, k)])), { requiredKeys })
      .map((q) => Object.entries(q).filter(([, v]) => v !== undefined).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${enc(x)}`) : [`${k}=${enc(v)}`])).join('&'));
  const valid = pairs((s, k) => arbitraryFor(s, HINTS, k), e.required);
  const hostile = pairs((s, k) => hostileFor(s, HINTS, k), []);
  const query = fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 3, arbitrary: hostile },
    { weight: 1, arbitrary: fc.tuple(valid, rawQuery).map(([q, r]) => `${q}&${r}`) },
  );
  const body = e.body
    ? fc.oneof(
      { weight: 5, arbitrary: hostileFor(e.body, HINTS).map((v) => ({ data: JSON.stringify(v) as string | Uint8Array, type: 'application/json' })) },
      { weight: 2, arbitrary: rawBody.map((data) => ({ data, type: 'application/json' })) },
      { weight: 1, arbitrary: fc.tuple(nastyValue, fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'application/json; charset=latin1'))
        .map(([v, type]) => ({ data: JSON.stringify(v) ?? 'x', type })) },
    )
    : fc.constant(undefined);
  return fc.record({ params, query, body, asToken: fc.nat(3).map((n) => n === 0) });
}

describe.each(BACKENDS)('fuzz: hostile input against every endpoint (%s)', (backend) => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startServer(backend, { clock: new ManualClock(), env: { CK_TOKEN_SECRET: 'fuzz-secret-0123456789abcdef-0123456789' } });
    token = (await s.req('POST', '/tokens', { user_id: 'alice', scopes: ['ingest', 'read'] })).body.token;
  });
  afterAll(() => s?.close());

  const counts = async () => {
    await s.app.ck.coalescer.flush();
    const sql = `SELECT ${TABLES.map((t) => `(SELECT count(*) FROM ${t})::int AS ${t}`).join(', ')}`;
    return (await s.db.query(sql)).rows[0];
  };

  it('the API documents the core endpoints', () => {
    const listed = ENDPOINTS.map((e) => `${e.method} ${e.path}`);
    for (const core of ['POST /heartbeat', 'POST /heartbeats', 'POST /checkpoints', 'GET /checkpoints', 'GET /status/{user_id}', 'GET /status', 'POST /keys', 'POST /tokens']) {
      expect(listed).toContain(core);
    }
  });

  it.each(ENDPOINTS.map((e) => [`${e.method} ${e.path}`, e] as const))('%s', async (_name, e) => {
    await fc.assert(fc.asyncProperty(requestFor(e), async ({ params, query, body, asToken }) => {
      const path = e.path.replace(/\{(\w+)\}/g, (_m, k: string) => params[k] as string) + (query ? `?${query}` : '');
      const writes = e.method !== 'GET';
      const before = writes ? await counts() : undefined;
      const headers: Record<string, string> = { authorization: `Bearer ${asToken ? token : s.adminKey}` };
      if (body) headers['content-type'] = body.type;
      const ac = new AbortController();
      const res = await fetch(s.url + path, { method: e.method, headers, body: body?.data as BodyInit | undefined, signal: ac.signal });
      const type = res.headers.get('content-type') ?? '';
      const where = `${e.method} ${path.slice(0, 200)} -> ${res.status}`;
      if (type.startsWith('text/event-stream')) {
        ac.abort(); // a stream that opened: nothing more to check
        expect(res.status, where).toBe(200);
        return;
      }
      const text = await res.text();
      expect(res.status, `${where}: ${text.slice(0, 300)}`).toBeLessThan(500);
      if (res.status >= 400) {
        expect(type, where).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(text), where).toMatchObject({ type: expect.any(String), title: expect.any(String), status: res.status, detail: expect.any(String) });
        if (writes) expect(await counts(), `${where} wrote something`).toEqual(before);
      }
    }), { numRuns: RUNS });
  }, 120_000);
});
