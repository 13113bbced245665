import { randomBytes } from 'node:crypto';
import { buildApp } from '../src/app.js';
import type { App } from '../src/http/types.js';
import { createKey, type Scope } from '../src/auth/keys.js';
import { type Config, loadConfig } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { openPglite } from '../src/db/pglite.js';
import { openPostgresDb } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Db } from '../src/db/types.js';
import { quoteIdent } from '../src/db/types.js';
import type { Clock } from '../src/time.js';
import { anyTestFailed } from './setup.js';

export type Backend = 'pglite' | 'postgres' | 'pgbouncer';

/** Every suite runs on PGlite, and on PostgreSQL too when TEST_DATABASE_URL is set. */
export const BACKENDS: Backend[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];
export const PG_URL = process.env.TEST_DATABASE_URL;
/** A streaming standby of TEST_DATABASE_URL's server (CI: .ci/standby.sh). */
export const REPLICA_URL = process.env.TEST_DATABASE_URL ? process.env.TEST_REPLICA_URL : undefined;
/** PgBouncer in transaction mode in front of TEST_DATABASE_URL's server (CI: .ci/pgbouncer.ini). */
export const POOLER_URL = process.env.TEST_DATABASE_URL ? process.env.TEST_PGBOUNCER_URL : undefined;
/**
 * The suites that must also hold behind a transaction pooler (ingest, events, sessions, the scheduler,
 * two instances, webhooks, data rights) run a third time through it when TEST_PGBOUNCER_URL is set.
 */
export const WITH_POOLER: Backend[] = POOLER_URL ? [...BACKENDS, 'pgbouncer'] : BACKENDS;

/** `url` with its database name replaced. */
const withDatabase = (url: string, name: string) => {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.href;
};

export type TestDb = Db & {
  dropSchema(): Promise<void>;
  /** Another pool on the same database, as a second instance would open (PGlite: the same connection). */
  reopen(poolSize?: number): Promise<Db>;
};

/**
 * A fresh, isolated database: in-memory PGlite, or a new schema on PostgreSQL. `dropSchema` drops it,
 * unless a test of this file failed: then the schema stays for inspection and its name is printed.
 */
export async function openTestDb(kind: Backend, schema = `t_${randomBytes(5).toString('hex')}`): Promise<TestDb> {
  if (kind === 'pglite') {
    const db = await openPglite({ schema: 'public' });
    return Object.assign(db, { dropSchema: async () => {}, reopen: async () => db });
  }
  if (kind === 'pgbouncer') {
    // Behind the pooler ck runs in the public schema (it cannot set another per connection), so each
    // test file gets a database of its own instead of a schema.
    const admin = openPostgres({ url: PG_URL!, schema: 'public', poolSize: 1 });
    await admin.query(`CREATE DATABASE ${quoteIdent(schema)}`);
    await admin.close();
    const url = withDatabase(POOLER_URL!, schema);
    const db = await openPostgresDb(url, 'public', 10);
    return Object.assign(db, {
      reopen: (poolSize = 5) => openPostgresDb(url, 'public', poolSize),
      dropSchema: async () => {
        if (anyTestFailed()) {
          console.warn(`kept database ${schema} of a failed test for inspection (DROP DATABASE ${quoteIdent(schema)} WITH (FORCE) when done)`);
          return;
        }
        const a = openPostgres({ url: PG_URL!, schema: 'public', poolSize: 1 });
        await a.query(`DROP DATABASE IF EXISTS ${quoteIdent(schema)} WITH (FORCE)`).catch(() => {});
        await a.close();
      },
    });
  }
  const admin = openPostgres({ url: PG_URL!, schema: 'public', poolSize: 1 });
  await admin.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
  await admin.close();
  const db = openPostgres({ url: PG_URL!, schema, poolSize: 10 });
  const close = db.close.bind(db);
  return Object.assign(db, {
    close,
    reopen: async (poolSize = 5) => openPostgres({ url: PG_URL!, schema, poolSize }),
    dropSchema: async () => {
      if (anyTestFailed()) {
        console.warn(`kept schema ${schema} of a failed test for inspection (DROP SCHEMA ${quoteIdent(schema)} CASCADE when done)`);
        return;
      }
      const a = openPostgres({ url: PG_URL!, schema: 'public', poolSize: 1 });
      await a.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`).catch(() => {});
      await a.close();
    },
  });
}

export class ManualClock implements Clock {
  constructor(public t = Date.parse('2026-11-20T12:00:00.000Z')) {}
  now() {
    return this.t;
  }
  advance(ms: number) {
    this.t += ms;
  }
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ CK_SCHEDULER: 'off', LOG_LEVEL: 'silent', ...env });
}

export interface TestServer {
  url: string;
  app: App;
  db: Db;
  adminKey: string;
  config: Config;
  /** fetch against the server with the admin key (or `key`), JSON in and out. */
  req(method: string, path: string, body?: unknown, key?: string | null): Promise<{ status: number; body: any; headers: Headers }>;
  key(scopes: Scope[]): Promise<string>;
  close(): Promise<void>;
}

/** The real HTTP server on a random port over a fresh, migrated database. */
export async function startServer(
  kind: Backend, opts: { env?: Record<string, string>; clock?: Clock; db?: Db; replica?: Db; extend?: (app: App) => void | Promise<void> } = {},
): Promise<TestServer> {
  const db = opts.db ?? (await openTestDb(kind));
  await migrate(db);
  const config = testConfig(opts.env);
  const admin = await createKey(db, 'test admin', ['admin']);
  const app = await buildApp(config, { db, clock: opts.clock, extend: opts.extend, replica: opts.replica });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${addr.port}`;
  const req: TestServer['req'] = async (method, path, body, key) => {
    const headers: Record<string, string> = {};
    const k = key === undefined ? admin.key : key;
    if (k) headers.authorization = `Bearer ${k}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // CSV or SSE
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    url, app, db, adminKey: admin.key, config, req,
    key: async (scopes) => (await createKey(db, 'test', scopes)).key,
    async close() {
      await app.close();
      if (!opts.db) {
        await db.close();
        await (db as Db & { dropSchema?: () => Promise<void> }).dropSchema?.();
      }
    },
  };
}

/** The liveness timeouts (seconds) SQL helpers take; idle decay as configured by default unless given. */
export const timeoutsOf = (heartbeatSec: number, idleSec = 300) => ({ heartbeatSec, idleSec });
