import type { Config } from '../config.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';
import type { Db } from './types.js';
import { quoteIdent } from './types.js';

/** Opens the configured backend: PostgreSQL when DATABASE_URL is set, else PGlite in CK_DATA_DIR. */
export async function openDb(config: Pick<Config, 'databaseUrl' | 'schema' | 'dataDir' | 'poolSize'>): Promise<Db> {
  if (config.databaseUrl) {
    const db = openPostgres({ url: config.databaseUrl, schema: config.schema, poolSize: config.poolSize });
    await db.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(config.schema)}`);
    return db;
  }
  return openPglite({ dataDir: config.dataDir, schema: config.schema });
}
