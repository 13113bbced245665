import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, ManualClock, startServer, type TestServer } from './helpers.js';
import { expectProblem, rawReq } from './problem.js';

/** Sends raw bytes on a fresh connection; resolves with everything the server wrote before closing. */
function rawExchange(url: string, bytes: string, timeoutMs = 20_000): Promise<{ text: string; ms: number }> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (text += d));
    socket.on('close', () => resolve({ text, ms: Date.now() - started }));
    socket.on('error', () => {});
    setTimeout(() => reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(text.slice(0, 200))}`)), timeoutMs).unref();
  });
}

/** The status line and the problem document of a raw HTTP answer. */
function parseRaw(text: string) {
  const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), head, body: JSON.parse(body) };
}

describe.each(BACKENDS)('what an outside probe broke: edge input (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  const DAY = new Date(clock.now()).toISOString().slice(0, 10);
  beforeAll(async () => {
    s = await startServer(backend, { clock });
    await s.req('POST', '/heartbeat', { user_id: 'alice' });
  });
  afterAll(() => s?.close());

  const count = async (table: string) => (await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;

  it('content with a lone surrogate, in a value or a key, is a 422 at /content and writes nothing', async () => {
    const before = await count('checkpoints');
    for (const raw of ['{"x":"\\ud800"}', '{"\\udc00":1}', '{"a":{"b":["ok","\\udfff"]}}']) {
      const r = await rawReq(s.url, 'POST', '/checkpoints', `{"user_id":"alice","state":"Busy","content":${raw}}`, { key: s.adminKey });
      expectProblem(r, 422);
      expect(r.body.errors[0].path).toBe('/content');
    }
    // A proper pair (an emoji) is text, and fine.
    const ok = await rawReq(s.url, 'POST', '/checkpoints', '{"user_id":"alice","state":"Busy","content":{"mood":"\\ud83d\\ude00"}}', { key: s.adminKey });
    expect(ok.status).toBe(201);
    expect(ok.body.content).toEqual({ mood: '😀' });
    expect(await count('checkpoints')).toBe(before + 1);
  });

  it('dates outside 1970-01-01..9999-12-31 are a 422 for user, team and CSV summaries', async () => {
    for (const q of ['user_id=alice&', '', 'format=csv&']) {
      for (const [from, to, at] of [['0000-01-01', '0000-01-02', '/from'], [DAY, '10000-01-01', '/to'], ['1969-12-31', DAY, '/from']]) {
        const r = await s.req('GET', `/summaries?${q}from=${from}&to=${to}`);
        expectProblem(r, 422);
        expect(r.body.errors.map((e: any) => e.path)).toContain(at);
      }
    }
  });

  it('one text rule for names: C1 controls and lone surrogates are refused in key names as in user ids', async () => {
    const keys = await count('api_keys');
    for (const name of ['a\u0085b', 'a\ud800b', 'tab\there']) {
      expectProblem(await s.req('POST', '/keys', { name, scopes: ['read'] }), 422);
      expectProblem(await s.req('POST', '/heartbeat', { user_id: name }), 422);
    }
    expect(await count('api_keys')).toBe(keys);
    const fine = await s.req('POST', '/keys', { name: 'desk 🎧 é', scopes: ['read'] });
    expect(fine.status).toBe(201);
    expect((await s.req('GET', '/keys')).body.keys.map((k: any) => k.name)).toContain('desk 🎧 é');
  });

  it('a webhook URL with credentials is refused, and one stored before is never shown with them', async () => {
    const r = await s.req('POST', '/webhooks', { url: 'https://user:secret@hooks.example/ck' });
    expectProblem(r, 422);
    expect(JSON.stringify(r.body)).not.toContain('secret@');
    await s.db.query(`INSERT INTO webhooks (url, secret) VALUES ('https://old:pa55@hooks.example/x', 'whsec_x')`);
    const listed = JSON.stringify((await s.req('GET', '/webhooks')).body);
    expect(listed).toContain('https://***@hooks.example/x');
    expect(listed).not.toContain('pa55');
    await s.db.query(`DELETE FROM webhooks WHERE url LIKE '%pa55%'`);
  });

  it('numbers in query strings are decimal; zone names are IANA zones', async () => {
    for (const limit of ['0x10', '1e2', '+5', ' 5', '5.']) {
      const r = await s.req('GET', `/status?state=Online&limit=${encodeURIComponent(limit)}`);
      expectProblem(r, 422);
      expect(r.body.errors.map((e: any) => e.path)).toContain('/limit');
    }
    expect((await s.req('GET', '/status?state=Online&limit=16')).status).toBe(200);
    for (const tz of ['localtime', 'Factory', 'posixrules', 'posix/Europe/Berlin', 'right/UTC']) {
      expectProblem(await s.req('GET', `/summaries?user_id=alice&from=${DAY}&to=${DAY}&tz=${encodeURIComponent(tz)}`), 422);
      expectProblem(await s.req('PUT', '/users/alice', { timezone: tz }), 422);
    }
    expect((await s.req('GET', `/summaries?user_id=alice&from=${DAY}&to=${DAY}&tz=Europe/Berlin`)).status).toBe(200);
  });

  it("what Node's HTTP parser refuses, and CONNECT, are answered with problem+json", async () => {
    const cases: [string, number][] = [
      ['GARBAGE\r\n\r\n', 400],
      ['POST /heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
      ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
    ];
    for (const [bytes, status] of cases) {
      const { text } = await rawExchange(s.url, bytes);
      const r = parseRaw(text);
      expect(r.status, bytes.slice(0, 40)).toBe(status);
      expect(r.head).toMatch(/content-type: application\/problem\+json/i);
      expect(r.body).toMatchObject({ status, code: expect.any(String), title: expect.any(String) });
    }
  });
});

describe('slow clients are timed out when the code says', () => {
  it('a request whose headers never finish gets a 408 after 10 s, not a minute', async () => {
    const s = await startServer('pglite');
    try {
      const { text, ms } = await rawExchange(s.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a', 20_000);
      expect(parseRaw(text).status).toBe(408);
      expect(ms).toBeGreaterThanOrEqual(9_000);
      expect(ms).toBeLessThan(13_000);
    } finally {
      await s.close();
    }
  }, 30_000);
});
