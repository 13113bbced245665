import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { openPostgresDb } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { PG_URL, POOLER_URL } from './helpers.js';

const withDatabase = (url: string, name: string) => Object.assign(new URL(url), { pathname: `/${name}` }).href;

describe.skipIf(!POOLER_URL)('behind PgBouncer in transaction mode', () => {
  it('a schema other than public cannot be set per connection: ck says so at start, with the fix', async () => {
    const err = await openPostgresDb(POOLER_URL!, 'ck_elsewhere', 2).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain('CK_DB_SCHEMA is "ck_elsewhere"');
    expect(err.message).toContain('ALTER ROLE');
  });

  it("uses a schema the role's or database's own search_path names", async () => {
    const name = `t_pool_${Date.now().toString(36)}`;
    const admin = openPostgres({ url: PG_URL!, schema: 'public', poolSize: 1 });
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.query(`ALTER DATABASE ${name} SET search_path = ck_tenant, public`);
    try {
      const db = await openPostgresDb(withDatabase(POOLER_URL!, name), 'ck_tenant', 2);
      await migrate(db);
      const { rows } = await db.query<{ s: string }>(`SELECT table_schema AS s FROM information_schema.tables WHERE table_name = 'checkpoints'`);
      expect(rows).toEqual([{ s: 'ck_tenant' }]);
      await db.close();
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    }
  });
});
