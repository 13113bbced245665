import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyWebhook } from '../client/src/webhooks.js';
import { loadMigrations, migrate } from '../src/db/migrate.js';
import { BACKENDS, openTestDb, startServer, type TestServer } from './helpers.js';
import { rejection, startReceiver } from './webhook-receiver.js';
import { waitFor } from './wait.js';

// Deliveries are checked with the `standardwebhooks` package itself (rejection()), never a re-implementation.

const OVERLAP_SEC = 3;
// The receivers listen on 127.0.0.1, which ck refuses unless private destinations are allowed.
const env = { CK_WEBHOOK_ALLOW_PRIVATE: 'true', CK_WEBHOOK_RETRY_BASE_MS: '50', CK_WEBHOOK_ROTATION_OVERLAP: String(OVERLAP_SEC) };

const deliveries = async (s: TestServer, id: string) => (await s.req('GET', `/webhooks/${id}/deliveries?limit=1000`)).body.deliveries as any[];
const hookOf = async (s: TestServer, id: string) => (await s.req('GET', '/webhooks')).body.webhooks.find((w: any) => w.id === id);

async function change(s: TestServer, user: string, state: string): Promise<string> {
  const r = await s.req('POST', '/checkpoints', { user_id: user, state });
  expect(r.status).toBe(201);
  return r.body.id;
}

describe.each(BACKENDS)('Standard Webhooks (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend, { env });
  });
  afterAll(() => s?.close());

  it('rotation: both secrets verify during the overlap, only the new one after', async () => {
    const rx = await startReceiver();
    try {
      const hook = (await s.req('POST', '/webhooks', { url: rx.url, user_ids: ['rot'] })).body;
      const old = hook.secret as string;
      const delivered = async (id: string) => waitFor(`event ${id}`, () => rx.acked().find((r) => r.event.id === id));

      const before = await delivered(await change(s, 'rot', 'Busy'));
      expect(rejection(old, before)).toBeNull();

      const rotated = await s.req('POST', `/webhooks/${hook.id}/rotate`);
      expect(rotated.status).toBe(200);
      const fresh = rotated.body.secret as string;
      expect(fresh).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(fresh).not.toBe(old);
      const expires = Date.parse(rotated.body.previous_secret_expires_at);
      expect(expires - Date.now()).toBeLessThanOrEqual(OVERLAP_SEC * 1000 + 1000);

      const during = await delivered(await change(s, 'rot', 'Away'));
      // Signed while the overlap ran (the claim reads the database's clock): two signatures, each verifies.
      expect(Number(during.headers['webhook-timestamp']) * 1000).toBeLessThan(expires);
      expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
      expect(rejection(fresh, during)).toBeNull();
      expect(rejection(old, during)).toBeNull();
      // The ping is signed the same way.
      const ping = await s.req('POST', `/webhooks/${hook.id}/test`);
      const pinged = rx.got.find((r) => r.headers['webhook-id'] === ping.body.webhook_id)!;
      expect(rejection(old, pinged)).toBeNull();
      expect(rejection(fresh, pinged)).toBeNull();

      await waitFor('the overlap to end', async () => {
        const { rows } = await s.db.query<{ over: boolean }>(`SELECT now() > previous_secret_expires_at AS over FROM webhooks WHERE id = $1`, [hook.id]);
        return rows[0]!.over;
      }, 10_000);
      const after = await delivered(await change(s, 'rot', 'Online'));
      expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
      expect(rejection(fresh, after)).toBeNull();
      expect(rejection(old, after)).toMatch(/signature/i);
      await s.req('DELETE', `/webhooks/${hook.id}`);
    } finally {
      await rx.close();
    }
  });

  it('the reference verifier rejects a tampered body and a replay with a stale timestamp', async () => {
    const rx = await startReceiver();
    try {
      const hook = (await s.req('POST', '/webhooks', { url: rx.url, user_ids: ['tamper'] })).body;
      const id = await change(s, 'tamper', 'Busy');
      const r = await waitFor('a delivery', () => rx.acked().find((x) => x.event.id === id));
      expect(rejection(hook.secret, r)).toBeNull();
      // ck-client's verifier agrees.
      expect(verifyWebhook(hook.secret, r.headers, r.raw)).toEqual(r.body);
      expect(rejection(hook.secret, { ...r, raw: r.raw.replace('"Busy"', '"Away"') })).toMatch(/signature/i);
      expect(rejection(hook.secret, { ...r, headers: { ...r.headers, 'webhook-id': `${id}0` } })).toMatch(/signature/i);
      // The same delivery replayed six minutes later: outside the library's 5-minute tolerance.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 6 * 60_000);
        expect(rejection(hook.secret, r)).toMatch(/too old/i);
      } finally {
        vi.useRealTimers();
      }
      await s.req('DELETE', `/webhooks/${hook.id}`);
    } finally {
      await rx.close();
    }
  });

  it('410 Gone disables the endpoint until it is enabled; 3xx is a failed attempt, not followed', async () => {
    let answer = 302;
    const rx = await startReceiver((r) => (r.path === '/elsewhere' ? 200 : answer));
    try {
      const hook = (await s.req('POST', '/webhooks', { url: `${rx.url}/gone`, user_ids: ['g410'] })).body;
      const first = await change(s, 'g410', 'Busy');
      const second = await change(s, 'g410', 'Away');
      await waitFor('a redirect answered', () => rx.got.some((r) => r.status === 302) || undefined);
      expect(rx.got.every((r) => r.path === '/gone')).toBe(true);
      answer = 410;
      const log = await waitFor('the first delivery failed with 410', async () => {
        const d = await deliveries(s, hook.id);
        return d.find((x) => x.event_id === first && x.status === 'failed') ? d : undefined;
      });
      expect(log.find((x) => x.event_id === first)).toMatchObject({ last_status: 410, next_attempt_at: null });
      // The endpoint is disabled, its next delivery waits unsent, and new events are not queued for it.
      const off = await hookOf(s, hook.id);
      expect(off).toMatchObject({ enabled: false, disabled_reason: 'the receiver answered 410 Gone' });
      expect(Date.parse(off.disabled_at)).not.toBeNaN();
      const whileOff = await change(s, 'g410', 'Online');
      const sent = rx.got.length;
      await new Promise((r) => setTimeout(r, 300));
      expect(rx.got.length).toBe(sent);
      expect((await deliveries(s, hook.id)).map((d) => [d.event_id, d.status])).toEqual([[second, 'pending'], [first, 'failed']]);

      answer = 200;
      const on = await s.req('POST', `/webhooks/${hook.id}/enable`);
      expect(on.status).toBe(200);
      expect(on.body).toMatchObject({ id: hook.id, enabled: true, disabled_at: null, disabled_reason: null });
      await waitFor('the paused delivery', () => rx.acked('/gone').some((r) => r.event.id === second) || undefined);
      expect(rx.got.some((r) => r.event.id === whileOff)).toBe(false);
      await s.req('DELETE', `/webhooks/${hook.id}`);
    } finally {
      await rx.close();
    }
  });

  it('POST /webhooks/:id/test sends a signed webhook.test ping and answers what the receiver said', async () => {
    let answer = 200;
    const rx = await startReceiver(() => answer);
    try {
      const hook = (await s.req('POST', '/webhooks', { url: `${rx.url}/ping`, user_ids: ['nobody'] })).body;
      const ok = await s.req('POST', `/webhooks/${hook.id}/test`);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ ok: true, status: 200, error: null });
      expect(ok.body.webhook_id).toMatch(/^test_/);
      const got = rx.got.at(-1)!;
      expect(rejection(hook.secret, got)).toBeNull();
      expect(got.headers['webhook-id']).toBe(ok.body.webhook_id);
      expect(got.body).toMatchObject({ type: 'webhook.test', data: { webhook_id: hook.id } });
      expect(Date.parse(got.body.timestamp)).not.toBeNaN();

      answer = 500;
      expect((await s.req('POST', `/webhooks/${hook.id}/test`)).body).toMatchObject({ ok: false, status: 500 });
      // A ping is not a delivery: nothing logged, nothing retried.
      expect(await deliveries(s, hook.id)).toEqual([]);
      await s.req('DELETE', `/webhooks/${hook.id}`);
      // A host name: resolved and checked once, then connected to through the pinned lookup.
      answer = 200;
      const named = (await s.req('POST', '/webhooks', { url: `${rx.url.replace('127.0.0.1', 'localhost')}/named`, user_ids: ['named'] })).body;
      expect((await s.req('POST', `/webhooks/${named.id}/test`)).body).toMatchObject({ ok: true, status: 200 });
      const event = await change(s, 'named', 'Busy');
      await waitFor('a delivery to a host name', () => rx.acked('/named').some((r) => r.event?.id === event) || undefined);
      await s.req('DELETE', `/webhooks/${named.id}`);
      const closed = (await s.req('POST', '/webhooks', { url: 'http://127.0.0.1:9/closed', user_ids: ['nobody'] })).body;
      const refused = (await s.req('POST', `/webhooks/${closed.id}/test`)).body;
      expect(refused).toMatchObject({ ok: false, status: null });
      expect(refused.error).toMatch(/ECONNREFUSED/);
      await s.req('DELETE', `/webhooks/${closed.id}`);
    } finally {
      await rx.close();
    }
  });
});

describe.each(BACKENDS)('safe destinations (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend, { env: { CK_WEBHOOK_RETRY_BASE_MS: '50' } });
  });
  afterAll(() => s?.close());

  it('refuses internal destinations at registration with a 422 naming the reason, writing nothing', async () => {
    const cases: [string, RegExp][] = [
      ['http://127.0.0.1:8080/hook', /loopback/],
      ['http://169.254.169.254/latest/meta-data/', /link-local/],
      ['http://[::1]/hook', /loopback/],
      ['http://10.1.2.3/hook', /private/],
      ['https://172.20.0.1/hook', /private/],
      ['http://192.168.1.1/hook', /private/],
      ['http://100.64.0.1/hook', /CGNAT/],
      ['http://0.0.0.0/hook', /unspecified/],
      ['http://[::ffff:127.0.0.1]/hook', /loopback/],
      ['http://[::ffff:a9fe:a9fe]/hook', /link-local/],
      ['http://[fd12::1]/hook', /unique-local/],
      ['http://[fe80::1]/hook', /link-local/],
      ['http://224.0.0.1/hook', /multicast/],
      ['http://255.255.255.255/hook', /broadcast/],
      ['http://localhost:8080/hook', /"localhost" resolves to .*loopback/],
    ];
    for (const [url, reason] of cases) {
      const r = await s.req('POST', '/webhooks', { url });
      expect(r.status, url).toBe(422);
      expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(r.body).toMatchObject({ code: 'destination_refused', status: 422 });
      expect(r.body.errors).toEqual([expect.objectContaining({ path: '/url', location: 'body', message: expect.stringMatching(reason) })]);
    }
    expect((await s.req('GET', '/webhooks')).body.webhooks).toEqual([]);
  });

  it('refuses again at delivery (DNS can change): the attempt fails with the reason and is retried', async () => {
    const rx = await startReceiver();
    try {
      // A URL that was public when registered and now points inside (as after a DNS change).
      const { rows } = await s.db.query<{ id: string }>(
        `INSERT INTO webhooks (url, secret) VALUES ($1, 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=') RETURNING id::text`, [rx.url],
      );
      const id = rows[0]!.id;
      const named = (await s.db.query<{ id: string }>(
        `INSERT INTO webhooks (url, secret) VALUES ($1, 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=') RETURNING id::text`,
        [rx.url.replace('127.0.0.1', 'localhost')],
      )).rows[0]!.id;
      const event = await change(s, 'ssrf', 'Busy');
      const d = await waitFor('refused attempts', async () => (await deliveries(s, id)).find((x) => x.event_id === event && x.attempts >= 2));
      expect(d).toMatchObject({ status: 'pending', last_status: null });
      expect(d.last_error).toMatch(/^destination refused: 127\.0\.0\.1, a loopback address/);
      const n = await waitFor('refused attempts by name', async () => (await deliveries(s, named)).find((x) => x.event_id === event && x.attempts >= 1));
      expect(n.last_error).toMatch(/^destination refused: "localhost" resolves to 127\.0\.0\.1, a loopback address/);
      await s.req('DELETE', `/webhooks/${named}`);
      expect((await s.req('POST', `/webhooks/${id}/test`)).body).toMatchObject({ ok: false, status: null, error: expect.stringMatching(/loopback/) });
      expect(rx.got).toEqual([]);
      await s.req('DELETE', `/webhooks/${id}`);
    } finally {
      await rx.close();
    }
  });
});

describe.each(BACKENDS)('secrets from before Standard Webhooks (%s)', (backend) => {
  it('migration 20 re-encodes base64url secrets as standard base64 of the same key bytes', async () => {
    const db = await openTestDb(backend);
    try {
      const all = await loadMigrations();
      const at = all.findIndex((m) => m.name === 'standard_webhooks');
      await migrate(db, all.slice(0, at));
      // Bytes whose base64url has both - and _ (and so differs from base64).
      const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i % 2 ? 0xfb : 0xff)));
      const already = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
      await db.query(`INSERT INTO webhooks (url, secret) VALUES ('https://example.com/a', $1), ('https://example.com/b', $2)`,
        [`whsec_${key.toString('base64url')}`, already]);
      await migrate(db, all);
      const { rows } = await db.query<{ secret: string }>(`SELECT secret FROM webhooks ORDER BY id`);
      expect(rows.map((r) => r.secret)).toEqual([`whsec_${key.toString('base64')}`, already]);
      expect(rows[0]!.secret).toMatch(/[+/]/);
    } finally {
      await db.close();
      await db.dropSchema();
    }
  });
});
