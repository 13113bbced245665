import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrate, SchemaTooNewError } from '../src/db/migrate.js';
import { openPglite } from '../src/db/pglite.js';
import { openPostgres } from '../src/db/postgres.js';
import { BACKENDS, openTestDb, PG_URL, startServer } from './helpers.js';

describe.each(BACKENDS)('migrations (%s)', (backend) => {
  it('apply once, record each, and are a no-op the second time', async () => {
    const db = await openTestDb(backend);
    const all = await loadMigrations();
    expect(await migrate(db)).toEqual(all.map((m) => m.id));
    expect(await migrate(db)).toEqual([]);
    const { rows } = await db.query<{ id: number }>('SELECT id FROM ck_migrations ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(all.map((m) => m.id));
    await db.close();
    await db.dropSchema();
  });

  it('refuse a database migrated by a newer ck', async () => {
    const db = await openTestDb(backend);
    await migrate(db);
    await db.query(`INSERT INTO ck_migrations (id, name) VALUES (999, 'from_the_future')`);
    await expect(migrate(db)).rejects.toThrow(SchemaTooNewError);
    await db.close();
    await db.dropSchema();
  });
});

describe.skipIf(!PG_URL)('migrations on PostgreSQL', () => {
  it('instances starting together never race: five concurrent migrators apply each migration once', async () => {
    const base = await openTestDb('postgres');
    const pools = Array.from({ length: 5 }, () => openPostgres({ url: PG_URL!, schema: base.schema, poolSize: 2 }));
    const results = await Promise.all(pools.map((p) => migrate(p)));
    const applied = results.flat().sort((a, b) => a - b);
    expect(applied).toEqual((await loadMigrations()).map((m) => m.id));
    await Promise.all(pools.map((p) => p.close()));
    await base.close();
    await base.dropSchema();
  });
});

describe('PGlite persistence', () => {
  it('keeps data across a restart on the same data dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ck-pglite-'));
    try {
      const db1 = await openPglite({ dataDir: dir, schema: 'public' });
      const s1 = await startServer('pglite', { db: db1 });
      await s1.req('POST', '/checkpoints', { user_id: 'persist', state: 'Busy' });
      await s1.close();
      await db1.close();
      const db2 = await openPglite({ dataDir: dir, schema: 'public' });
      const s2 = await startServer('pglite', { db: db2 });
      const st = await s2.req('GET', '/status/persist');
      expect(st.body).toMatchObject({ user_id: 'persist', state: 'Busy' });
      await s2.close();
      await db2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
