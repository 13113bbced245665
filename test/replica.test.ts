import { createServer, type Server, type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresDb } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Db } from '../src/db/types.js';
import { openTestDb, REPLICA_URL, startServer, type TestDb, type TestServer } from './helpers.js';
import { waitFor } from './wait.js';

const LAG = 'x-ck-replica-lag-ms';
const MAX_LAG_MS = 1000;

/** A TCP proxy to the replica that can be cut and restored: the replica "going away" mid-run. */
async function proxyTo(target: URL): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () => new Promise<void>((resolve) => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as { port: number }).port;
      resolve();
    });
  });
  const cut = async () => {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await listen();
  return { port, cut, restore: listen, close: cut };
}

describe.skipIf(!REPLICA_URL)('heavy reads on a streaming replica (postgres)', () => {
  let db: TestDb;
  let replica: Db;
  let standby: Db; // direct, superuser: pauses and resumes replay
  let proxy: Awaited<ReturnType<typeof proxyTo>>;
  let s: TestServer;

  beforeAll(async () => {
    db = await openTestDb('postgres');
    const target = new URL(REPLICA_URL!);
    proxy = await proxyTo(target);
    const viaProxy = Object.assign(new URL(REPLICA_URL!), { port: String(proxy.port) }).href;
    standby = openPostgres({ url: REPLICA_URL!, schema: 'public', poolSize: 1 });
    // The schema reaches the standby by replication.
    await waitFor('the schema on the standby', async () =>
      ((await standby.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [db.schema])).rows.length ? true : undefined));
    replica = await openPostgresDb(viaProxy, db.schema, 4, { replica: true });
    s = await startServer('postgres', { db, replica, env: { CK_READ_MAX_LAG_MS: String(MAX_LAG_MS) } });
  });
  afterAll(async () => {
    await standby?.query('SELECT pg_wal_replay_resume()').catch(() => {});
    await s?.close();
    await replica?.close();
    await standby?.close();
    await proxy?.close();
    await db?.close();
    await db?.dropSchema();
  });

  const caughtUp = (what: string, check: (r: Awaited<ReturnType<TestServer['req']>>) => boolean, path: string) =>
    waitFor(what, async () => {
      const r = await s.req('GET', path);
      return r.headers.get(LAG) !== null && check(r) ? r : undefined;
    });

  it('serves summaries, timelines, exports and listings by state from the replica, saying how stale', async () => {
    expect((await s.req('POST', '/checkpoints', { user_id: 'r1', state: 'Busy' })).status).toBe(201);
    const tl = await caughtUp('the replica to have the checkpoint', (r) => r.body.checkpoints?.length === 1, '/checkpoints?user_id=r1');
    expect(Number(tl.headers.get(LAG))).toBeGreaterThanOrEqual(0);
    expect(Number(tl.headers.get(LAG))).toBeLessThanOrEqual(MAX_LAG_MS);
    const today = new Date().toISOString().slice(0, 10);
    for (const path of [`/summaries?user_id=r1&from=${today}&to=${today}&tz=UTC`, `/summaries?from=${today}&to=${today}&tz=UTC`,
      '/status?state=Busy', '/users/r1/export']) {
      const r = await s.req('GET', path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get(LAG), path).toMatch(/^\d+$/);
    }
    // What must see its own write stays on the primary.
    for (const [method, path, body] of [['GET', '/status/r1'], ['POST', '/heartbeat', { user_id: 'r1' }], ['GET', '/users/r1/sessions']] as const) {
      const r = await s.req(method, path, body);
      expect(r.status).toBe(200);
      expect(r.headers.get(LAG), path).toBeNull();
    }
  });

  it('falls back to the primary while the replica lags more than CK_READ_MAX_LAG_MS, and returns when it catches up', async () => {
    await caughtUp('replica reads', () => true, '/checkpoints?user_id=r1');
    await standby.query('SELECT pg_wal_replay_pause()');
    try {
      expect((await s.req('POST', '/checkpoints', { user_id: 'r1', state: 'Away' })).status).toBe(201);
      const first = await s.req('GET', '/checkpoints?user_id=r1');
      const states = first.body.checkpoints.map((c: any) => c.state);
      // Whoever answers tells the truth about itself: the replica (with a header) has not seen Away yet.
      if (first.headers.get(LAG) !== null) expect(states).toEqual(['Busy']);
      else expect(states).toEqual(['Busy', 'Away']);
      await new Promise((r) => setTimeout(r, MAX_LAG_MS + 300));
      const late = await s.req('GET', '/checkpoints?user_id=r1');
      expect(late.headers.get(LAG)).toBeNull();
      expect(late.body.checkpoints.map((c: any) => c.state)).toEqual(['Busy', 'Away']);
    } finally {
      await standby.query('SELECT pg_wal_replay_resume()');
    }
    await caughtUp('the replica again, caught up', (r) => r.body.checkpoints.length === 2, '/checkpoints?user_id=r1');
  });

  it('falls back to the primary when the replica goes away, and returns when it is back', async () => {
    await caughtUp('replica reads', () => true, '/checkpoints?user_id=r1');
    await proxy.cut();
    for (const path of ['/checkpoints?user_id=r1', '/status?state=Away', '/checkpoints?user_id=r1']) {
      const r = await s.req('GET', path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get(LAG), path).toBeNull();
    }
    await proxy.restore();
    await caughtUp('replica reads after it is back', () => true, '/checkpoints?user_id=r1');
  });
});
