import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';
import { type Db, quoteIdent } from '../../src/db/types.js';
import { type Backend, PG_URL } from '../helpers.js';
import { anyTestFailed } from '../setup.js';

/** Where a spawned service keeps its data: a fresh PGlite directory or a fresh PostgreSQL schema. */
export interface Target {
  backend: Backend;
  /** Env for the service (CK_DATA_DIR, or DATABASE_URL + CK_DB_SCHEMA). */
  env: Record<string, string>;
  /** Opens the data from the test process. PGlite: only while no service has the directory open. */
  open(): Promise<Db>;
  /** Removes the directory or drops the schema (kept when a test of the file failed). */
  remove(): Promise<void>;
}

export async function newTarget(backend: Backend, url = PG_URL): Promise<Target> {
  if (backend === 'pglite') {
    const dir = await mkdtemp(join(tmpdir(), 'ck-fault-'));
    const dataDir = join(dir, 'data');
    return {
      backend,
      env: { CK_DATA_DIR: dataDir },
      open: () => openPglite({ dataDir, schema: 'public' }),
      async remove() {
        if (anyTestFailed()) return console.warn(`kept data directory ${dataDir} of a failed test for inspection`);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  if (!url) throw new Error('PostgreSQL target needs TEST_DATABASE_URL');
  const schema = `fault_${randomBytes(5).toString('hex')}`;
  return {
    backend,
    env: { DATABASE_URL: url, CK_DB_SCHEMA: schema },
    open: async () => openPostgres({ url, schema, poolSize: 2 }),
    async remove() {
      if (anyTestFailed()) return console.warn(`kept schema ${schema} of a failed test for inspection`);
      const admin = openPostgres({ url, schema: 'public', poolSize: 1 });
      await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`).catch(() => {});
      await admin.close();
    },
  };
}

/** Opens the target, runs `fn`, and always closes it again. */
export async function withDb<T>(target: Target, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await target.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
