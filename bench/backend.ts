import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, loadConfig } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { openDb } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { type Db, quoteIdent } from '../src/db/types.js';

/** A database of the bench's own: a fresh schema on PostgreSQL, or a temp data dir for PGlite. */
export interface Backend {
  kind: 'postgres' | 'pglite';
  /** Env pointing ck (or a baseline child) at this database. */
  env: Record<string, string>;
  /** ck's configuration for it: pool size, timeout, as the service will see them. */
  config: Config;
  /**
   * Opens and migrates it. PGlite allows one process per data dir: close the handle before starting
   * a child on the same backend.
   */
  open(): Promise<Db>;
  /** Drops the schema or removes the data dir. */
  drop(): Promise<void>;
}

export async function createBackend(name: string, databaseUrl: string | undefined): Promise<Backend> {
  const tag = `${name}_${randomBytes(3).toString('hex')}`;
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  if (databaseUrl) {
    const schema = `bench_${tag}`;
    env = { DATABASE_URL: databaseUrl, CK_DB_SCHEMA: schema };
    drop = async () => {
      const admin = openPostgres({ url: databaseUrl, schema: 'public', poolSize: 1 });
      try {
        await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      } finally {
        await admin.close();
      }
    };
  } else {
    const dir = await mkdtemp(join(tmpdir(), `ck-bench-${name}-`));
    env = { CK_DATA_DIR: dir };
    drop = () => rm(dir, { recursive: true, force: true });
  }
  const config = loadConfig({ ...process.env, ...env });
  return {
    kind: databaseUrl ? 'postgres' : 'pglite',
    env,
    config,
    async open() {
      const db = await openDb(config);
      await migrate(db);
      return db;
    },
    drop,
  };
}
