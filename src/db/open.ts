import { type Config, ConfigError } from '../config.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';
import type { Db } from './types.js';
import { isUnavailable, quoteIdent, sqlState } from './types.js';

// What a transaction pooler (PgBouncer) answers to a startup parameter it does not pass on.
const PROTOCOL_VIOLATION = '08P01';

/** Opens the configured backend: PostgreSQL when DATABASE_URL is set, else PGlite in CK_DATA_DIR. */
export async function openDb(config: Pick<Config, 'databaseUrl' | 'schema' | 'dataDir' | 'poolSize'>): Promise<Db> {
  if (config.databaseUrl) return openPostgresDb(config.databaseUrl, config.schema, config.poolSize);
  return openPglite({ dataDir: config.dataDir, schema: config.schema });
}

/**
 * The direct connection (CK_DIRECT_DATABASE_URL) for migrations and installing pg_cron jobs, when DATABASE_URL
 * goes through a pooler; undefined when not set (DATABASE_URL serves for everything).
 */
export async function openDirectDb(config: Pick<Config, 'directDatabaseUrl' | 'schema'>): Promise<Db | undefined> {
  return config.directDatabaseUrl ? openPostgresDb(config.directDatabaseUrl, config.schema, 2) : undefined;
}

/**
 * A PostgreSQL pool whose connections work in `schema`, checked before use. ck needs nothing a
 * transaction pooler takes away (docs/scaling.md): no LISTEN, advisory locks only transaction-scoped,
 * unnamed statements. What a pooler refuses is the `options` startup parameter that puts the schema on
 * the search_path; then the role's own search_path must do it, and ck says so at start if it does not.
 */
export async function openPostgresDb(url: string, schema: string, poolSize: number, opts: { replica?: boolean } = {}): Promise<Db> {
  let db = openPostgres({ url, schema, poolSize });
  // A replica is read-only: its schema comes from the primary.
  const create = () => db.query(opts.replica ? 'SELECT 1' : `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  try {
    await create();
  } catch (err) {
    if (sqlState(err) !== PROTOCOL_VIOLATION || schema === 'public') {
      await db.close();
      throw err;
    }
    await db.close();
    db = openPostgres({ url, schema, poolSize, searchPath: false });
    await create();
  }
  try {
    const { rows } = await db.query<{ s: string | null }>('SELECT current_schema() AS s');
    if (rows[0]!.s !== schema) {
      throw new ConfigError(
        `CK_DB_SCHEMA is "${schema}" but connections use schema "${rows[0]!.s}": the server (a transaction pooler such ` +
        `as PgBouncer?) refused the startup parameter that sets it. Use CK_DB_SCHEMA=public, or give the role the ` +
        `schema: ALTER ROLE <role> SET search_path = ${quoteIdent(schema)}, public`,
      );
    }
    // A pooler in statement mode cannot run ck's transactions: say so now, not at the first write.
    await db.transaction(async (tx) => {
      await tx.query('SELECT pg_try_advisory_xact_lock(0)');
      await tx.query('SELECT 1');
    }).catch((err) => {
      if (isUnavailable(err)) throw err;
      throw new ConfigError(`ck cannot run transactions on DATABASE_URL (a pooler in statement mode? use pool_mode = transaction): ${(err as Error).message}`);
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}
