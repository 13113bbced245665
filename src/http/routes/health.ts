import type { App } from '../../app.js';
import { ERRORS } from '../errors.js';
import { loadMigrations } from '../../db/migrate.js';

export default async function health(app: App) {
  const expected = (await loadMigrations()).length;

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async () => {
    try {
      const { rows } = await app.ck.db.query<{ id: number }>('SELECT max(id)::int AS id FROM ck_migrations');
      if ((rows[0]?.id ?? 0) !== expected) throw ERRORS.unavailable('database is not migrated to this version');
    } catch (err) {
      throw err instanceof Error && 'status' in err ? err : ERRORS.unavailable();
    }
    return { status: 'ready' };
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
