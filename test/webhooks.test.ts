import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordCheckpoint } from '../src/checkpoints/record.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Db } from '../src/db/types.js';
import { countPending, pruneDeliveries } from '../src/webhooks/outbox.js';
import { BACKENDS, openTestDb, PG_URL, startServer, type TestServer, timeoutsOf } from './helpers.js';
import { assertInOrderExactlyOnce, rejection, startReceiver } from './webhook-receiver.js';
import { waitFor } from './wait.js';

// Fast retries so failure paths finish quickly; the schedule itself is asserted through the log. The
// receivers listen on 127.0.0.1, which ck refuses unless private destinations are allowed.
const env = { CK_WEBHOOK_RETRY_BASE_MS: '50', CK_WEBHOOK_ALLOW_PRIVATE: 'true' };

/** Posts checkpoints in order; returns the event ids per user. */
async function changes(s: TestServer, list: [string, string, object?][]): Promise<Record<string, string[]>> {
  const ids: Record<string, string[]> = {};
  for (const [user_id, state, content] of list) {
    const r = await s.req('POST', '/checkpoints', { user_id, state, ...(content ? { content } : {}) });
    expect(r.status).toBe(201);
    (ids[user_id] ??= []).push(r.body.id);
  }
  return ids;
}

const deliveries = async (s: TestServer, id: string) => {
  const r = await s.req('GET', `/webhooks/${id}/deliveries?limit=1000`);
  expect(r.status).toBe(200);
  return r.body.deliveries as any[];
};

describe.each(BACKENDS)('webhooks (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend, { env });
  });
  afterAll(() => s.close());

  it('delivers every event once, in order per user, signed, after retrying failures', async () => {
    let open = false;
    const rx = await startReceiver(() => (open ? 200 : 500));
    try {
      const created = await s.req('POST', '/webhooks', { url: `${rx.url}/hook` });
      expect(created.status).toBe(201);
      const hook = created.body;
      expect(hook).toMatchObject({ url: `${rx.url}/hook`, user_ids: null, states: null, enabled: true, disabled_at: null });
      // Standard Webhooks: whsec_ + standard base64 of 32 bytes.
      expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(hook.secret.slice(6), 'base64')).toHaveLength(32);
      const ids = await changes(s, [
        ['o1', 'Away'], ['o2', 'Busy'], ['o1', 'Busy', { call: 7 }], ['o1', 'Online'], ['o2', 'Away'], ['o1', 'DoNotDisturb'],
      ]);

      // While the receiver fails, the log shows the head event retrying with a response code and a next time.
      const retrying = await waitFor('failed attempts in the log', async () => {
        const d = (await deliveries(s, hook.id)).find((x) => x.event_id === ids.o1![0] && x.attempts >= 2);
        return d;
      });
      expect(retrying).toMatchObject({ status: 'pending', last_status: 500, delivered_at: null, user_id: 'o1', state: 'Away' });
      expect(Date.parse(retrying.next_attempt_at)).not.toBeNaN();

      open = true;
      await waitFor('all six events acknowledged', () => (rx.acked().length >= 6 ? true : undefined));
      assertInOrderExactlyOnce(rx.got, ids);

      const other = (await s.req('POST', '/webhooks', { url: `${rx.url}/other`, user_ids: ['nobody'] })).body;
      for (const r of rx.got) {
        // Verified by the reference library, with this webhook's secret and no other.
        expect(rejection(hook.secret, r)).toBeNull();
        expect(rejection(other.secret, r)).toMatch(/signature/i);
        expect(r.headers['webhook-id']).toBe(r.event.id);
        expect(r.headers['ck-signature']).toBeUndefined();
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.body).toEqual({ type: 'user.state_changed', timestamp: r.event.timestamp, data: r.event });
      }
      // A retry carries the same webhook-id (receivers de-duplicate by it) and is signed afresh.
      const head = rx.got.filter((r) => r.event.id === ids.o1![0]);
      expect(new Set(head.map((r) => r.headers['webhook-id']))).toEqual(new Set([ids.o1![0]]));
      await s.req('DELETE', `/webhooks/${other.id}`);
      // The same object as the SSE stream sends.
      const busy = rx.acked().find((r) => r.event.id === ids.o1![1])!.event;
      expect(Object.keys(busy)).toEqual(['id', 'user_id', 'session_id', 'state', 'previous_state', 'timestamp', 'source', 'content']);
      expect(busy).toMatchObject({ user_id: 'o1', state: 'Busy', previous_state: 'Away', source: 'client', content: { call: 7 } });
      expect(busy.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      // The log: everything delivered; the failed attempts are counted before the success.
      const log = await waitFor('the log to show six deliveries', async () => {
        const d = await deliveries(s, hook.id);
        return d.length === 6 && d.every((x) => x.status === 'delivered') ? d : undefined;
      });
      const failures = rx.got.filter((r) => r.status >= 300).length;
      expect(log.reduce((n, x) => n + x.attempts - 1, 0)).toBe(failures);
      const first = log.find((x) => x.event_id === ids.o1![0])!;
      expect(first).toMatchObject({ last_status: 200, last_error: null, next_attempt_at: null });
      expect(first.attempts).toBeGreaterThanOrEqual(3);
      expect(log.map((x) => x.event_id)).toEqual([...ids.o1!, ...ids.o2!].sort((a, b) => Number(b) - Number(a)));
      expect(await countPending(s.db)).toBe(0);

      expect((await s.req('DELETE', `/webhooks/${hook.id}`)).status).toBe(204);
      expect((await s.req('GET', '/webhooks')).body.webhooks.map((w: any) => w.id)).not.toContain(hook.id);
    } finally {
      await rx.close();
    }
  });

  it('filters by user_ids and states', async () => {
    const rx = await startReceiver();
    try {
      const a = (await s.req('POST', '/webhooks', { url: `${rx.url}/a`, user_ids: ['f1'] })).body;
      const b = (await s.req('POST', '/webhooks', { url: `${rx.url}/b`, states: ['Busy', 'DoNotDisturb'] })).body;
      const c = (await s.req('POST', '/webhooks', { url: `${rx.url}/c`, user_ids: ['f2'], states: ['Away'] })).body;
      const listed = (await s.req('GET', '/webhooks')).body.webhooks;
      expect(listed.find((w: any) => w.id === b.id)).toEqual({
        id: b.id, url: `${rx.url}/b`, user_ids: null, states: ['Busy', 'DoNotDisturb'], created_at: b.created_at,
        enabled: true, disabled_at: null, disabled_reason: null,
      });
      expect(listed.every((w: any) => !('secret' in w))).toBe(true);

      const ids = await changes(s, [['f1', 'Busy'], ['f2', 'Busy'], ['f1', 'Away'], ['f2', 'Away'], ['f3', 'DoNotDisturb']]);
      const [f1Busy, f1Away] = ids.f1!;
      const [f2Busy, f2Away] = ids.f2!;
      // Enqueuing happens in the checkpoint's transaction, so the logs are complete already.
      const logged = async (id: string) => (await deliveries(s, id)).map((d) => d.event_id).sort();
      expect(await logged(a.id)).toEqual([f1Busy, f1Away].sort());
      expect(await logged(b.id)).toEqual([f1Busy, f2Busy, ids.f3![0]].sort());
      expect(await logged(c.id)).toEqual([f2Away]);
      await waitFor('six deliveries', () => (rx.acked().length >= 6 ? true : undefined));
      const seen = (path: string) => rx.acked(path).map((r) => r.event.id).sort();
      expect(seen('/a')).toEqual([f1Busy, f1Away].sort());
      expect(seen('/b')).toEqual([f1Busy, f2Busy, ids.f3![0]].sort());
      expect(seen('/c')).toEqual([f2Away]);
      for (const w of [a, b, c]) expect((await s.req('DELETE', `/webhooks/${w.id}`)).status).toBe(204);
    } finally {
      await rx.close();
    }
  });

  it('gives up on an event 24 h after it happened, then sends the next one', async () => {
    let open = false;
    const rx = await startReceiver(() => (open ? 200 : 503));
    try {
      const hook = (await s.req('POST', '/webhooks', { url: rx.url, user_ids: ['g1'] })).body;
      const ids = (await changes(s, [['g1', 'Busy'], ['g1', 'Away']])).g1!;
      await waitFor('a first attempt', () => (rx.got.length >= 1 ? true : undefined));
      // Age the first event past the retry window; its next failure is final.
      await s.db.query(`UPDATE webhook_deliveries SET created_at = now() - interval '25 hours' WHERE event_id = $1`, [ids[0]]);
      const failed = await waitFor('the first delivery to fail', async () => (await deliveries(s, hook.id)).find((d) => d.event_id === ids[0] && d.status === 'failed'));
      expect(failed).toMatchObject({ last_status: 503, next_attempt_at: null, delivered_at: null });
      open = true;
      await waitFor('the second event', () => (rx.acked().length === 1 ? true : undefined));
      expect(rx.acked()[0]!.event.id).toBe(ids[1]);
      expect(rx.got.filter((r) => r.event.id === ids[0]).every((r) => r.status === 503)).toBe(true);
      expect((await s.req('GET', `/webhooks/${hook.id}/deliveries?status=failed`)).body.deliveries.map((d: any) => d.event_id))
        .toEqual([ids[0]]);
      await s.req('DELETE', `/webhooks/${hook.id}`);
    } finally {
      await rx.close();
    }
  });

  it('prunes finished deliveries after the retention period, keeping recent ones', async () => {
    const rx = await startReceiver();
    try {
      const hook = (await s.req('POST', '/webhooks', { url: rx.url, user_ids: ['p1'] })).body;
      const ids = (await changes(s, [['p1', 'Busy'], ['p1', 'Away']])).p1!;
      await waitFor('deliveries', async () => ((await deliveries(s, hook.id)).every((d) => d.status === 'delivered') || undefined));
      await s.db.query(`UPDATE webhook_deliveries SET created_at = now() - interval '8 days' WHERE event_id = $1`, [ids[0]]);
      expect(await pruneDeliveries(s.db, 7 * 86_400)).toBe(1);
      expect((await deliveries(s, hook.id)).map((d) => d.event_id)).toEqual([ids[1]]);
      await s.req('DELETE', `/webhooks/${hook.id}`);
    } finally {
      await rx.close();
    }
  });

  it('requires the admin scope', async () => {
    for (const scopes of [['read'], ['ingest']] as const) {
      const key = await s.key([...scopes]);
      expect((await s.req('POST', '/webhooks', { url: 'http://example.test/' }, key)).status).toBe(403);
      expect((await s.req('GET', '/webhooks', undefined, key)).status).toBe(403);
      expect((await s.req('DELETE', '/webhooks/1', undefined, key)).status).toBe(403);
      expect((await s.req('GET', '/webhooks/1/deliveries', undefined, key)).status).toBe(403);
      for (const action of ['rotate', 'enable', 'test']) expect((await s.req('POST', `/webhooks/1/${action}`, undefined, key)).status).toBe(403);
    }
    expect((await s.req('GET', '/webhooks', undefined, null)).status).toBe(401);
  });

  it('rejects bad input with 422 at the field, writing nothing', async () => {
    const before = (await s.req('GET', '/webhooks')).body.webhooks.length;
    const cases: [unknown, string][] = [
      [{ url: 'ftp://example.test/x' }, '/url'],
      [{ url: 'not a url' }, '/url'],
      [{ url: 'javascript:alert(1)' }, '/url'],
      [{}, '/url'],
      [{ url: 'https://example.test/', user_ids: [] }, '/user_ids'],
      [{ url: 'https://example.test/', states: ['Nope'] }, '/states/0'],
      [{ url: 'https://example.test/', states: 'Busy' }, '/states'],
    ];
    for (const [body, path] of cases) {
      const r = await s.req('POST', '/webhooks', body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(r.body.errors.map((e: any) => e.path), JSON.stringify(body)).toContain(path);
    }
    expect((await s.req('GET', '/webhooks')).body.webhooks.length).toBe(before);
    expect((await s.req('DELETE', '/webhooks/999999')).status).toBe(404);
    expect((await s.req('GET', '/webhooks/999999/deliveries')).status).toBe(404);
    for (const action of ['rotate', 'enable', 'test']) expect((await s.req('POST', `/webhooks/999999/${action}`)).status).toBe(404);
    expect((await s.req('GET', '/webhooks/99999999999999999999/deliveries')).status).toBe(422);
  });
});

// These open databases of their own; PGlite start-up alone can take seconds on a loaded machine.
describe.each(BACKENDS)('webhook delivery across restarts and instances (%s)', (backend) => {
  it('a restarted app delivers what was pending, including events written while no app ran', async () => {
    const db = await openTestDb(backend);
    let open = false;
    const rx = await startReceiver(() => (open ? 200 : 500));
    let s2: TestServer | undefined;
    try {
      const s1 = await startServer(backend, { db, env });
      const hook = (await s1.req('POST', '/webhooks', { url: rx.url })).body;
      const ids = await changes(s1, [['r1', 'Busy'], ['r1', 'Away'], ['r2', 'Busy']]);
      await waitFor('attempts before the restart', () => (rx.got.length >= 2 ? true : undefined));
      await s1.close();
      const down = await recordCheckpoint(db, { userId: 'r1', state: 'Online', ts: Date.now() }, Date.now(), timeoutsOf(60));
      ids.r1!.push(down.status === 'stored' ? down.row.id : 'missing');
      open = true;
      s2 = await startServer(backend, { db, env });
      await waitFor('pending events after the restart', () => (rx.acked().length >= 4 ? true : undefined));
      assertInOrderExactlyOnce(rx.got, ids);
      // Acknowledged is not yet recorded: poll the log.
      await waitFor('the log to show every delivery delivered', async () => ((await deliveries(s2!, hook.id)).every((d) => d.status === 'delivered') || undefined));
    } finally {
      await s2?.close();
      await rx.close();
      await db.close();
      await db.dropSchema();
    }
  }, 120_000);

  it('two instances share the work without breaking per-user order', async () => {
    const db = await openTestDb(backend);
    // A second instance: its own pool on the same schema (PGlite: the same single connection).
    const otherDb: Db = backend === 'postgres' ? openPostgres({ url: PG_URL!, schema: db.schema, poolSize: 5 }) : db;
    let n = 0;
    const rx = await startReceiver(() => (++n % 3 === 0 ? 500 : 200));
    const servers: TestServer[] = [];
    try {
      servers.push(await startServer(backend, { db, env }), await startServer(backend, { db: otherDb, env }));
      const [a, b] = servers as [TestServer, TestServer];
      await a.req('POST', '/webhooks', { url: rx.url });
      const script: [string, string][] = [];
      const cycle = ['Busy', 'Away', 'Online', 'DoNotDisturb'];
      for (let i = 0; i < 8; i++) for (const u of ['m1', 'm2', 'm3', 'm4']) script.push([u, cycle[i % 4]!]);
      // Writes go to both instances; either may send any event.
      const ids: Record<string, string[]> = {};
      for (const [i, [user, state]] of script.entries()) {
        const r = await (i % 2 ? a : b).req('POST', '/checkpoints', { user_id: user, state });
        expect(r.status).toBe(201);
        (ids[user] ??= []).push(r.body.id);
      }
      await waitFor('all events acknowledged', () => (rx.acked().length >= script.length ? true : undefined));
      assertInOrderExactlyOnce(rx.got, ids);
      await waitFor('an empty backlog', async () => ((await countPending(a.db)) === 0 || undefined));
    } finally {
      for (const s of servers) await s.close();
      await rx.close();
      if (otherDb !== db) await otherDb.close();
      await db.close();
      await db.dropSchema();
    }
  }, 120_000);
});
