import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_PAGE } from '../src/users/export.js';
import { aggregateSummaries } from '../src/summaries/sql.js';
import { openTestDb, startServer, type TestServer, WITH_POOLER } from './helpers.js';
import { waitFor } from './wait.js';

const DAY = 86_400_000;
// The webhook points at a closed local port: deliveries stay pending (they are data about the user).
const env = { CK_WEBHOOK_ALLOW_PRIVATE: 'true', CK_WEBHOOK_RETRY_BASE_MS: '3600000' };

/** Tables of ck's schema with a user_id column, from the catalog: a table added later is covered too. */
async function userTables(s: TestServer): Promise<string[]> {
  const { rows } = await s.db.query<{ t: string }>(
    `SELECT c.relname AS t FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND a.attname = 'user_id' AND NOT a.attisdropped
      ORDER BY 1`);
  return rows.map((r) => r.t);
}

async function rowsOf(s: TestServer, tables: string[], user: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) {
    const { rows } = await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t} WHERE user_id = $1`, [user]);
    out[t] = rows[0]!.n;
  }
  return out;
}

describe.each(WITH_POOLER)("users' data rights (%s)", (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend, { env });
    expect((await s.req('POST', '/webhooks', { url: 'http://127.0.0.1:9/hook' })).status).toBe(201);
  });
  afterAll(() => s?.close());

  /** A user with a row in every kind of table: settings, sessions, history, manual presence, summaries, deliveries, a token. */
  async function fullUser(user: string): Promise<{ token: string; jti: string }> {
    const now = s.app.ck.clock.now();
    expect((await s.req('PUT', `/users/${user}`, { timezone: 'Europe/Berlin' })).status).toBe(200);
    expect((await s.req('POST', '/checkpoints', { user_id: user, session_id: 'laptop', state: 'Busy', timestamp: now - 2 * DAY, content: { call: 'c-1' } })).status).toBe(201);
    expect((await s.req('POST', '/checkpoints', { user_id: user, session_id: 'laptop', state: 'Online', timestamp: now - 2 * DAY + 3_600_000 })).status).toBe(201);
    expect((await s.req('POST', '/heartbeat', { user_id: user, session_id: 'phone', client: 'ios/3.2' })).status).toBe(200);
    expect((await s.req('PUT', `/users/${user}/presence`, { state: 'DoNotDisturb', until: now + 3_600_000 })).status).toBe(200);
    await aggregateSummaries(s.db, s.app.ck.clock.now(), s.app.ck.timeouts);
    const t = await s.req('POST', '/tokens', { user_id: user, scopes: ['ingest', 'read'], ttl: 600 });
    expect(t.status).toBe(201);
    return { token: t.body.token, jti: t.body.jti };
  }

  it('exports everything held about a user as one JSON document, to an admin or their own token', async () => {
    const { token } = await fullUser('exp');
    const res = await fetch(`${s.url}/users/exp/export`, { headers: { authorization: `Bearer ${s.adminKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="ck-export-exp.json"');
    const doc = await res.json();
    expect(Object.keys(doc)).toEqual([
      'user_id', 'exported_at', 'settings', 'status', 'sessions', 'manual_presence', 'session_history', 'timeline', 'summaries', 'webhook_deliveries', 'tokens',
    ]);
    expect(doc).toMatchObject({ user_id: 'exp', settings: { timezone: 'Europe/Berlin' }, status: { state: 'DoNotDisturb', sessions: 2 } });
    expect(doc.sessions.map((x: any) => [x.session_id, x.client])).toEqual([['laptop', null], ['phone', 'ios/3.2']]);
    expect(doc.manual_presence).toEqual([expect.objectContaining({ state: 'DoNotDisturb' })]);
    expect(doc.session_history.map((x: any) => [x.session_id, x.state])).toEqual([['laptop', 'Busy'], ['laptop', 'Online'], ['phone', 'Online']]);
    expect(doc.timeline.map((x: any) => [x.state, x.source])).toEqual([['Busy', 'client'], ['Online', 'client'], ['DoNotDisturb', 'manual']]);
    expect(doc.timeline[0].content).toEqual({ call: 'c-1' });
    expect(doc.summaries.length).toBeGreaterThan(0);
    expect(doc.summaries[0]).toEqual({ date: expect.stringMatching(/^\d{4}-\d\d-\d\d$/), state: expect.any(String), seconds: expect.any(Number) });
    expect(doc.webhook_deliveries.length).toBe(3);
    expect(doc.webhook_deliveries[0].event).toMatchObject({ user_id: 'exp', state: 'Busy' });
    expect(doc.tokens).toEqual([expect.objectContaining({ scopes: ['ingest', 'read'], revoked_at: null })]);

    // The user's own token may; a token for someone else may not, nor a read key (a whole record is for an admin or the person).
    expect((await s.req('GET', '/users/exp/export', undefined, token)).status).toBe(200);
    const other = (await s.req('POST', '/tokens', { user_id: 'someone', scopes: ['read'] })).body.token;
    expect((await s.req('GET', '/users/exp/export', undefined, other)).body.code).toBe('other_user');
    expect((await s.req('GET', '/users/exp/export', undefined, await s.key(['read']))).status).toBe(403);
    expect((await s.req('GET', '/users/nobody/export')).status).toBe(404);
  });

  it('streams a long history page by page, complete and in order', async () => {
    const n = EXPORT_PAGE * 2 + 17;
    // Stored directly: a long history, alternating states one second apart.
    await s.db.query(
      `INSERT INTO checkpoints (user_id, state, ts, source)
       SELECT 'long', CASE WHEN i % 2 = 0 THEN 'Online' ELSE 'Away' END, now() - interval '3 days' + i * interval '1 second', 'client'
         FROM generate_series(1, $1::int) i`, [n]);
    await s.db.query(`INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat) VALUES ('long', 'Offline', now(), now())`);
    const doc = await (await fetch(`${s.url}/users/long/export`, { headers: { authorization: `Bearer ${s.adminKey}` } })).json();
    expect(doc.timeline).toHaveLength(n);
    const ts = doc.timeline.map((x: any) => Date.parse(x.timestamp));
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThan(ts[i - 1]);
    expect(new Set(doc.timeline.map((x: any) => x.id)).size).toBe(n);
  });

  it('erases every row about a user in every table, revokes their tokens, and sends no event about it', async () => {
    const { token } = await fullUser('gone');
    await fullUser('kept');
    const tables = await userTables(s);
    expect(tables.length).toBeGreaterThanOrEqual(11);
    const before = await rowsOf(s, tables, 'gone');
    // Every table holds something about the user, so the erasure below is tested on each.
    expect(Object.entries(before).filter(([, n]) => n === 0).map(([t]) => t)).toEqual([]);
    const kept = await rowsOf(s, tables, 'kept');
    const { rows: ev } = await s.db.query<{ id: string }>(`SELECT max(id)::text AS id FROM events`);
    const webhook = (await s.req('POST', '/webhooks', { url: 'http://127.0.0.1:9/only', user_ids: ['gone', 'kept'] })).body;

    const erased = await s.req('DELETE', '/users/gone');
    expect(erased.status).toBe(204);
    expect(await rowsOf(s, tables, 'gone')).toEqual(Object.fromEntries(tables.map((t) => [t, 0])));
    expect(await rowsOf(s, tables, 'kept')).toEqual(kept);
    const { rows: after } = await s.db.query(`SELECT 1 FROM events WHERE id > $1::bigint`, [ev[0]!.id]);
    expect(after).toEqual([]);
    expect((await s.req('GET', '/webhooks')).body.webhooks.find((w: any) => w.id === webhook.id).user_ids).toEqual(['kept']);
    expect((await s.req('GET', '/status/gone')).status).toBe(404);
    expect((await s.req('DELETE', '/users/gone')).status).toBe(404);
    // Their token no longer works; the revocation outlives the user.
    expect((await s.req('GET', '/status/gone', undefined, token)).status).toBe(401);

    // A heartbeat afterwards starts a brand-new user.
    expect((await s.req('POST', '/heartbeat', { user_id: 'gone' })).body).toMatchObject({ state: 'Online' });
    expect((await s.req('GET', '/checkpoints?user_id=gone')).body.checkpoints.map((c: any) => [c.state, c.source])).toEqual([['Online', 'heartbeat']]);
    expect((await s.req('DELETE', '/users/gone')).status).toBe(204);
    expect((await s.req('DELETE', '/users/x', undefined, await s.key(['ingest', 'read']))).status).toBe(403);
  });

  it('a heartbeat acknowledged before the erasure and flushed after it does not bring the user back', async () => {
    // Real time: the erasure is stamped by the database's clock, the heartbeats by this instance's.
    const real = await startServer(backend, { env: { ...env, CK_FLUSH_INTERVAL_MS: '60000', CK_HEARTBEAT_TIMEOUT: '3600' } });
    try {
      expect((await real.req('POST', '/heartbeat', { user_id: 'late' })).status).toBe(200); // written: a new user
      expect((await real.req('POST', '/heartbeat', { user_id: 'late' })).status).toBe(200); // buffered
      expect(real.app.ck.coalescer.pendingCount).toBe(1);
      await new Promise((r) => setTimeout(r, 5));
      expect((await real.req('DELETE', '/users/late')).status).toBe(204);
      await real.app.ck.coalescer.flush();
      expect((await real.req('GET', '/status/late')).status).toBe(404);
      const { rows } = await real.db.query(`SELECT 1 FROM sessions WHERE user_id = 'late' UNION ALL SELECT 1 FROM checkpoints WHERE user_id = 'late'`);
      expect(rows).toEqual([]);
    } finally {
      await real.close();
    }
  });
});

describe.each(WITH_POOLER)('token revocation (%s)', (backend) => {
  it('DELETE /tokens/:jti is refused by every instance within a second and kept until the token expires', async () => {
    const db = await openTestDb(backend);
    const a = await startServer(backend, { db });
    const b = await startServer(backend, { db: await db.reopen() });
    try {
      const issued = (await a.req('POST', '/tokens', { user_id: 'tim', scopes: ['ingest', 'read'], ttl: 600 })).body;
      expect(issued.jti).toMatch(/^[\w-]+$/);
      expect((await b.req('POST', '/heartbeat', { user_id: 'tim' }, issued.token)).status).toBe(200);
      const listed = (await a.req('GET', '/tokens?user_id=tim')).body.tokens;
      expect(listed).toEqual([expect.objectContaining({ jti: issued.jti, user_id: 'tim', scopes: ['ingest', 'read'], revoked_at: null })]);

      const revokedAt = Date.now();
      expect((await a.req('DELETE', `/tokens/${issued.jti}`)).status).toBe(204);
      expect((await a.req('GET', '/status/tim', undefined, issued.token)).status).toBe(401);
      await waitFor('instance b to refuse the token', async () =>
        ((await b.req('GET', '/status/tim', undefined, issued.token)).status === 401 ? true : undefined), 5000, 20);
      expect(Date.now() - revokedAt).toBeLessThan(1000);
      expect((await a.req('GET', '/tokens?user_id=tim')).body.tokens[0].revoked_at).toEqual(expect.any(String));
      expect((await a.req('DELETE', `/tokens/${issued.jti}`)).status).toBe(204); // idempotent while unexpired
      expect((await a.req('DELETE', '/tokens/no-such-token')).status).toBe(404);
      expect((await a.req('DELETE', '/tokens/bad%20id')).status).toBe(422);

      // Once the token would have expired anyway, the grant and the revocation are pruned.
      const { rows: kept } = await db.query(`SELECT ck_prune_tokens() AS n`);
      expect(kept).toEqual([{ n: 0 }]);
      await db.query(`UPDATE tokens SET expires_at = now() - interval '1 second'`);
      await db.query(`UPDATE token_revocations SET expires_at = now() - interval '1 second'`);
      const { rows: pruned } = await db.query<{ n: number }>(`SELECT ck_prune_tokens() AS n`);
      expect(pruned[0]!.n).toBe(2);
    } finally {
      await a.close();
      await b.close();
      if (b.db !== db) await b.db.close();
      await db.close();
      await db.dropSchema();
    }
  });
});

