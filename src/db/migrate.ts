import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Db, Queryable } from './types.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// One lock id for "migrating ck"; the schema name is mixed in so schemas migrate independently.
const LOCK_KEY = 'ck.migrate';

/** Serializes migration work per schema until the transaction ends (instances starting together). */
async function lockMigrations(tx: Queryable): Promise<void> {
  await tx.query(`SET LOCAL lock_timeout = '60s'`);
  await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended($1 || current_schema(), 0))`, [LOCK_KEY]);
}

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{6}_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (f, i) => {
      const id = Number(f.slice(0, 6));
      if (id !== i + 1) throw new Error(`migration ${f} is out of sequence (expected ${i + 1})`);
      return { id, name: f.slice(7, -4), sql: await readFile(`${dir}/${f}`, 'utf8') };
    }),
  );
}

export class SchemaTooNewError extends Error {}

/** The newest migration applied to the database (0 for none). */
export async function schemaVersion(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ id: number }>('SELECT max(id)::int AS id FROM ck_migrations');
  return rows[0]?.id ?? 0;
}

const tooNew = (newest: number, known: number) =>
  new SchemaTooNewError(`database schema is at migration ${newest}, newer than this ck knows (${known}); upgrade ck`);

/**
 * Applies pending migrations, one transaction each, under a session advisory lock so instances
 * starting together never race. Refuses a database migrated by a newer ck.
 * @returns the ids applied by this call.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<number[]> {
  const all = migrations ?? (await loadMigrations());
  const applied: number[] = [];
  // Created under the same lock as the migrations: two instances issuing CREATE TABLE IF NOT EXISTS at
  // once can both pass the existence check, and the loser fails on the catalog (23505 or 42710).
  await db.transaction(async (tx) => {
    await lockMigrations(tx);
    await tx.query(`CREATE TABLE IF NOT EXISTS ck_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  });
  for (const m of all) {
    // One transaction per migration, serialized by a transaction-scoped advisory lock.
    const done = await db.transaction(async (tx) => {
      await lockMigrations(tx);
      const newest = await schemaVersion(tx);
      if (newest > all.length) throw tooNew(newest, all.length);
      if (newest >= m.id) return true;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO ck_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      return false;
    });
    if (!done) applied.push(m.id);
  }
  if (all.length === 0) return applied;
  // A database newer than the code is refused even when there was nothing to apply.
  const newest = await schemaVersion(db);
  if (newest > all.length) throw tooNew(newest, all.length);
  return applied;
}
