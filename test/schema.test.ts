import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '../src/db/migrate.js';
import { openTestDb } from './helpers.js';
import { dumpSchema } from './schema-dump.js';

const SNAPSHOT = `${MIGRATIONS_DIR}schema.sql`;

describe('the migrated schema', () => {
  it('matches the reviewed snapshot in migrations/schema.sql (npm run schema:snapshot updates it)', async () => {
    const db = await openTestDb('pglite');
    try {
      await migrate(db);
      const dump = await dumpSchema(db);
      if (process.env.CK_UPDATE_SCHEMA_SNAPSHOT === '1') await writeFile(SNAPSHOT, dump);
      const committed = await readFile(SNAPSHOT, 'utf8').catch(() => '');
      expect(dump, 'the schema changed: review it, then run `npm run schema:snapshot` and commit migrations/schema.sql').toBe(committed);
    } finally {
      await db.close();
    }
  });
});
