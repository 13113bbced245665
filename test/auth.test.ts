import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, KeyVerifier } from '../src/auth/keys.js';
import { migrate } from '../src/db/migrate.js';
import { openPostgres } from '../src/db/postgres.js';
import { DB_UNAVAILABLE, type Queryable } from '../src/db/types.js';
import { BACKENDS, ManualClock, openTestDb, startServer, type TestServer } from './helpers.js';

const SECRET = 'test-secret-0123456789abcdef-0123456789';
const DAY = '2026-11-20';

const isProblem = (r: { status: number; body: any; headers: Headers }, status: number) => {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
};

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());

describe.each(BACKENDS)('keys and per-user tokens (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  const count = async (table: string) => (await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
  const token = async (user_id: string, scopes: string[], ttl?: number) => {
    const r = await s.req('POST', '/tokens', { user_id, scopes, ...(ttl ? { ttl } : {}) });
    expect(r.status).toBe(201);
    return r.body.token as string;
  };

  beforeAll(async () => {
    s = await startServer(backend, { clock, env: { CK_TOKEN_SECRET: SECRET } });
    for (const u of ['alice', 'bob']) expect((await s.req('POST', '/heartbeat', { user_id: u })).status).toBe(200);
  });
  afterAll(() => s?.close());

  describe('API keys', () => {
    it('401 without a key, with a malformed header, an unknown key or a revoked key', async () => {
      const fake = `ck_${'0'.repeat(12)}_${'A'.repeat(43)}`;
      for (const key of [null, 'not-a-key', fake, `${s.adminKey.slice(0, -1)}x`]) {
        const r = await s.req('GET', '/status/alice', undefined, key);
        isProblem(r, 401);
        expect(r.headers.get('www-authenticate')).toBe('Bearer');
      }
      const basic = await fetch(`${s.url}/status/alice`, { headers: { authorization: `Basic ${s.adminKey}` } });
      expect(basic.status).toBe(401);

      const created = await s.req('POST', '/keys', { name: 'short-lived', scopes: ['read'] });
      expect((await s.req('GET', '/status/alice', undefined, created.body.key)).status).toBe(200);
      expect((await s.req('DELETE', `/keys/${created.body.id}`)).status).toBe(204);
      isProblem(await s.req('GET', '/status/alice', undefined, created.body.key), 401);
    });

    it.each([
      ['ingest', ['read'], 'POST', '/heartbeat', { user_id: 'alice' }],
      ['read', ['ingest'], 'GET', '/status/alice', undefined],
      ['admin', ['ingest', 'read'], 'GET', '/keys', undefined],
      ['admin', ['ingest', 'read'], 'POST', '/tokens', { user_id: 'alice', scopes: ['read'] }],
    ])('403 for a route that needs %s from a key with %j', async (scope, scopes, method, path, body) => {
      const key = await s.key(scopes as never);
      const r = await s.req(method, path, body, key);
      isProblem(r, 403);
      expect(r.body.detail).toContain(`"${scope}"`);
    });

    it('admin implies every scope', async () => {
      expect((await s.req('POST', '/heartbeat', { user_id: 'alice' })).status).toBe(200);
      expect((await s.req('GET', '/status/alice')).status).toBe(200);
    });

    it('POST /keys returns the secret once; GET /keys never shows it; DELETE revokes', async () => {
      const created = await s.req('POST', '/keys', { name: 'ci', scopes: ['ingest', 'read'] });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ id: expect.stringMatching(/^[0-9a-f]{12}$/), name: 'ci', scopes: ['ingest', 'read'] });
      expect(created.body.key).toMatch(new RegExp(`^ck_${created.body.id}_[\\w-]{43}$`));

      const list = await s.req('GET', '/keys');
      expect(list.status).toBe(200);
      const listed = list.body.keys.find((k: any) => k.id === created.body.id);
      expect(listed).toEqual({ id: created.body.id, name: 'ci', scopes: ['ingest', 'read'], created_at: expect.any(String) });
      const secret = created.body.key.split('_').slice(2).join('_'); // base64url may hold '_'
      expect(JSON.stringify(list.body)).not.toContain(secret);

      expect((await s.req('DELETE', `/keys/${created.body.id}`)).status).toBe(204);
      expect((await s.req('GET', '/keys')).body.keys.map((k: any) => k.id)).not.toContain(created.body.id);
      isProblem(await s.req('DELETE', `/keys/${created.body.id}`), 404);
      isProblem(await s.req('DELETE', '/keys/not-an-id'), 422);
    });

    it('rejects bad key requests with 422 and creates nothing', async () => {
      const before = await count('api_keys');
      for (const body of [{ name: 'x', scopes: [] }, { name: 'x', scopes: ['root'] }, { name: '', scopes: ['read'] }, { scopes: ['read'] }]) {
        isProblem(await s.req('POST', '/keys', body), 422);
      }
      expect(await count('api_keys')).toBe(before);
    });
  });

  describe('per-user tokens', () => {
    it('POST /tokens issues an HS256 JWT for one user with the given scopes and lifetime', async () => {
      const r = await s.req('POST', '/tokens', { user_id: 'alice', scopes: ['ingest', 'read'], ttl: 120 });
      expect(r.status).toBe(201);
      expect(r.body).toEqual({
        token: expect.any(String), jti: expect.stringMatching(/^[\w-]{16}$/), user_id: 'alice', scopes: ['ingest', 'read'],
        expires_at: new Date(clock.now() + 120_000).toISOString(),
      });
      expect(claims(r.body.token).jti).toBe(r.body.jti);
      expect(JSON.parse(Buffer.from(r.body.token.split('.')[0], 'base64url').toString())).toMatchObject({ alg: 'HS256' });
      expect(claims(r.body.token)).toMatchObject({ sub: 'alice', scopes: ['ingest', 'read'] });
      const byDefault = await s.req('POST', '/tokens', { user_id: 'alice', scopes: ['read'] });
      expect(byDefault.body.expires_at).toBe(new Date(clock.now() + 3600_000).toISOString());
    });

    it.each([
      [{ user_id: 'alice', scopes: ['admin'] }, '/scopes/0'],
      [{ user_id: 'alice', scopes: [] }, '/scopes'],
      [{ user_id: 'alice', scopes: ['read'], ttl: 0 }, '/ttl'],
      [{ user_id: 'alice', scopes: ['read'], ttl: 31_536_001 }, '/ttl'],
      [{ user_id: 'alice', scopes: ['read'], ttl: 1.5 }, '/ttl'],
      [{ user_id: '', scopes: ['read'] }, '/user_id'],
      [{ scopes: ['read'] }, '/user_id'],
    ])('POST /tokens %j is a 422 at %s', async (body, path) => {
      const r = await s.req('POST', '/tokens', body);
      isProblem(r, 422);
      expect(r.body.errors.map((e: any) => e.path)).toContain(path);
    });

    it('a token acts for its own user', async () => {
      const t = await token('alice', ['ingest', 'read']);
      expect((await s.req('POST', '/heartbeat', { user_id: 'alice' }, t)).status).toBe(200);
      expect((await s.req('POST', '/checkpoints', { user_id: 'alice', state: 'Busy' }, t)).status).toBe(201);
      expect((await s.req('PUT', '/users/alice', { timezone: 'Europe/Berlin' }, t)).status).toBe(200);
      expect((await s.req('GET', '/status/alice', undefined, t)).body).toMatchObject({ user_id: 'alice', state: 'Busy' });
      expect((await s.req('GET', '/checkpoints?user_id=alice', undefined, t)).status).toBe(200);
      expect((await s.req('GET', `/summaries?user_id=alice&from=${DAY}&to=${DAY}`, undefined, t)).status).toBe(200);
      expect((await s.req('GET', '/users/alice', undefined, t)).body).toEqual({ user_id: 'alice', timezone: 'Europe/Berlin' });
    });

    it('writes for another user are 403 and write nothing', async () => {
      const t = await token('alice', ['ingest', 'read']);
      const before = [await count('checkpoints'), await count('user_sessions'), await count('user_settings')];
      for (const [method, path, body] of [
        ['POST', '/heartbeat', { user_id: 'carol' }],
        ['POST', '/heartbeats', { user_ids: ['alice', 'carol'] }],
        ['POST', '/checkpoints', { user_id: 'bob', state: 'Away' }],
        ['PUT', '/users/bob', { timezone: 'Asia/Tokyo' }],
      ] as const) {
        isProblem(await s.req(method, path, body, t), 403);
      }
      await s.app.ck.coalescer.flush();
      expect([await count('checkpoints'), await count('user_sessions'), await count('user_settings')]).toEqual(before);
      expect((await s.req('GET', '/status/bob')).body.state).toBe('Online');
    });

    it('a token learns nothing about other users: the same 403 whether they exist or not, on every route', async () => {
      const t = await token('alice', ['ingest', 'read']);
      const asking = (u: string): [string, string, unknown][] => [
        ['GET', `/status/${u}`, undefined],
        ['GET', `/status?user_id=alice&user_id=${u}`, undefined],
        ['GET', `/checkpoints?user_id=${u}`, undefined],
        ['GET', `/summaries?user_id=${u}&from=${DAY}&to=${DAY}`, undefined],
        ['GET', `/users/${u}`, undefined],
        ['GET', `/events?user_id=${u}`, undefined],
        ['POST', '/heartbeat', { user_id: u }],
        ['POST', '/heartbeats', { user_ids: ['alice', u] }],
        ['POST', '/checkpoints', { user_id: u, state: 'Away' }],
        ['PUT', `/users/${u}`, { timezone: 'Asia/Tokyo' }],
      ];
      const existing = asking('bob');
      const unknown = asking('nobody-at-all');
      for (let i = 0; i < existing.length; i++) {
        const [a, b] = [await s.req(...existing[i]!, t), await s.req(...unknown[i]!, t)];
        isProblem(a, 403);
        isProblem(b, 403);
        const { instance: _a, ...restA } = a.body;
        const { instance: _b, ...restB } = b.body;
        expect(restA, `${existing[i]![0]} ${existing[i]![1]}`).toEqual(restB);
        expect(restA.code).toBe('other_user');
        expect(JSON.stringify(restA)).not.toContain('bob');
      }
    });

    it('without a user named, a token reads its own user; listings and service-wide metrics are refused', async () => {
      const t = await token('alice', ['read']);
      const all = await s.req('GET', `/summaries?from=${DAY}&to=${DAY}`, undefined, t);
      expect(all.status).toBe(200);
      expect(all.body.user_id).toBe('alice');
      expect(JSON.stringify(all.body)).not.toContain('"bob"');
      isProblem(await s.req('GET', '/status?state=Online', undefined, t), 403);
      isProblem(await s.req('GET', '/metrics', undefined, t), 403);
      const own = await s.req('GET', '/status?user_id=alice', undefined, t);
      expect(own.body.users.map((u: any) => u.user_id)).toEqual(['alice']);
    });

    it('a token holds only its scopes and never admin', async () => {
      const readOnly = await token('alice', ['read']);
      isProblem(await s.req('POST', '/heartbeat', { user_id: 'alice' }, readOnly), 403);
      const ingestOnly = await token('alice', ['ingest']);
      isProblem(await s.req('GET', '/status/alice', undefined, ingestOnly), 403);
      for (const [method, path, body] of [
        ['GET', '/keys', undefined],
        ['POST', '/keys', { name: 'x', scopes: ['admin'] }],
        ['POST', '/tokens', { user_id: 'bob', scopes: ['read'] }],
        ['POST', '/states', { name: 'Lunch', online: false }],
      ] as const) {
        isProblem(await s.req(method, path, body, readOnly), 403);
      }
    });

    it('an expired token is a 401', async () => {
      const t = await token('alice', ['read'], 60);
      expect((await s.req('GET', '/status/alice', undefined, t)).status).toBe(200);
      clock.advance(60_000);
      isProblem(await s.req('GET', '/status/alice', undefined, t), 401);
    });

    it('a tampered, re-signed, differently signed or unsigned token is a 401', async () => {
      const t = await token('alice', ['read']);
      const [h, , sig] = t.split('.');
      const payload = claims(t);
      const key = new TextEncoder().encode(SECRET);
      const forged = [
        `${h}.${b64({ ...payload, sub: 'bob' })}.${sig}`,
        `${h}.${b64({ ...payload, scopes: ['read', 'ingest'] })}.${sig}`,
        `${h}.${t.split('.')[1]}.${sig![0] === 'A' ? 'B' : 'A'}${sig!.slice(1)}`,
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`,
        await new SignJWT(payload).setProtectedHeader({ alg: 'HS512' }).sign(key),
        await new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(`${SECRET}-other`)),
        await new SignJWT({ ...payload, scopes: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).sign(key),
        await new SignJWT({ ...payload, iss: 'someone-else' }).setProtectedHeader({ alg: 'HS256' }).sign(key),
      ];
      for (const f of forged) isProblem(await s.req('GET', '/status/alice', undefined, f), 401);
    });
  });
});

describe.each(BACKENDS)('tokens without CK_TOKEN_SECRET (%s)', (backend) => {
  it('work out of the box: a secret generated once and kept in the database, shared by every instance', async () => {
    const a = await startServer(backend);
    const b = await startServer(backend, { db: a.db });
    try {
      const r = await a.req('POST', '/tokens', { user_id: 'alice', scopes: ['read'] });
      expect(r.status).toBe(201);
      await a.req('POST', '/heartbeat', { user_id: 'alice' });
      expect((await b.req('GET', '/status/alice', undefined, r.body.token)).status).toBe(200);
      // A token signed with some other secret is not one of ours.
      const jwt = await new SignJWT({ scopes: ['read'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice')
        .setIssuer('ck').setJti('x').setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
      isProblem(await b.req('GET', '/status/alice', undefined, jwt), 401);
      // CK_TOKEN_SECRET wins over the stored one.
      const c = await startServer(backend, { db: a.db, env: { CK_TOKEN_SECRET: SECRET } });
      try {
        expect((await c.req('GET', '/status/alice', undefined, jwt)).status).toBe(200);
        isProblem(await c.req('GET', '/status/alice', undefined, r.body.token), 401);
      } finally {
        await c.close();
      }
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe.each(BACKENDS)('API keys through a database outage (%s)', (backend) => {
  it('a key verified before the outage stays valid for staleIfErrorMs; unknown keys and later checks fail as unavailable', async () => {
    const db = await openTestDb(backend);
    // A pool to a port nothing listens on: every query fails as the seam's "database unavailable".
    const down = openPostgres({ url: 'postgres://postgres@127.0.0.1:1/none', schema: 'public', poolSize: 1 });
    try {
      await migrate(db);
      const known = (await createKey(db, 'before', ['ingest'])).key;
      const other = (await createKey(db, 'never checked', ['ingest'])).key;
      let target: Queryable = db;
      const seam: Queryable = { query: (text, params) => target.query(text, params), exec: (sql) => target.exec(sql) };
      const keys = new KeyVerifier(seam, 50, 1_500);
      expect(await keys.verify(known)).toMatchObject({ scopes: ['ingest'] });

      target = down;
      await new Promise((r) => setTimeout(r, 100)); // past the TTL
      expect(keys.cached(known)).toBeUndefined();
      expect(await keys.verify(known)).toMatchObject({ scopes: ['ingest'] }); // stale, because of the outage
      expect(keys.cached(known)).toMatchObject({ scopes: ['ingest'] }); // and not asked again for a second
      await expect(keys.verify(other)).rejects.toMatchObject({ code: DB_UNAVAILABLE });
      // A wrong secret for that key is still checked against the hash held: refused, not let through.
      expect(await keys.verify(`${known.slice(0, -1)}${known.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();

      await new Promise((r) => setTimeout(r, 1_600)); // past staleIfErrorMs
      await expect(keys.verify(known)).rejects.toMatchObject({ code: DB_UNAVAILABLE });
      target = db; // back
      expect(await keys.verify(known)).toMatchObject({ scopes: ['ingest'] });
    } finally {
      await down.close();
      await db.close();
      await db.dropSchema();
    }
  });
});
