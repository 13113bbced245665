import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import type { App } from '../src/http/types.js';
import { createKey } from '../src/auth/keys.js';
import { migrate } from '../src/db/migrate.js';
import type { Db } from '../src/db/types.js';
import { REDACT } from '../src/server.js';
import { BACKENDS, openTestDb, testConfig } from './helpers.js';

describe.each(BACKENDS)('keys and tokens never reach the logs (%s)', (backend) => {
  const lines: string[] = [];
  let db: Db & { dropSchema(): Promise<void> };
  let app: App;
  let url: string;
  let admin: string;

  beforeAll(async () => {
    db = await openTestDb(backend);
    await migrate(db);
    admin = (await createKey(db, 'admin', ['admin'])).key;
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    // As in server.ts, at the most verbose level.
    const logger = pino({ level: 'trace', redact: REDACT }, sink);
    app = await buildApp(testConfig({ CK_TOKEN_SECRET: 'logs-test-secret-0123456789abcdef-xyz', LOG_LEVEL: 'trace' }), { db, logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await db?.close();
    await db?.dropSchema();
  });

  const send = async (method: string, path: string, bearer: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  };

  it('logs requests, successful and failing, without any key or token', async () => {
    const created = await send('POST', '/keys', admin, { name: 'ingest', scopes: ['ingest', 'read'] });
    expect(created.status).toBe(201);
    const key: string = created.body.key;
    const issued = await send('POST', '/tokens', admin, { user_id: 'alice', scopes: ['ingest', 'read'] });
    expect(issued.status).toBe(201);
    const token: string = issued.body.token;

    expect((await send('POST', '/heartbeat', key, { user_id: 'alice' })).status).toBe(200);
    expect((await send('POST', '/heartbeat', key, { user_id: 'alice' })).status).toBe(200); // the heartbeat lane's
    expect((await send('POST', '/heartbeat', token, { user_id: 'alice' })).status).toBe(200);
    expect((await send('POST', '/heartbeat', token, { user_id: 'bob' })).status).toBe(403);
    expect((await send('POST', '/heartbeat', key, '{"user_id":')).status).toBe(400);
    expect((await send('GET', '/keys', key)).status).toBe(403);
    expect((await send('GET', '/status/alice', `${token.slice(0, -4)}AAAA`)).status).toBe(401);
    expect((await send('DELETE', `/keys/${created.body.id}`, admin)).status).toBe(204);
    expect((await send('GET', '/status/alice', key)).status).toBe(401);

    const beats = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request' && l.url === '/heartbeat' && l.status === 200);
    expect(beats).toHaveLength(3); // two by key (the second from the lane), one by token
    for (const b of beats) expect(b).toMatchObject({ method: 'POST', reqId: expect.any(String), ms: expect.any(Number) });
    const log = lines.join('');
    expect(lines.length).toBeGreaterThanOrEqual(8); // the requests above were logged
    // The secret is what follows "ck_<12 hex>_" (it may itself contain "_").
    for (const secret of [admin, key, key.slice(16), token, token.split('.')[2]!]) {
      expect(log).not.toContain(secret);
    }
  });
});
