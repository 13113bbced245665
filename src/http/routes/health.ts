import { loadMigrations, schemaVersion } from '../../db/migrate.js';
import { ERRORS } from '../errors.js';
import type { App } from '../types.js';

export default async function health(app: App) {
  const expected = (await loadMigrations()).length;

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async () => {
    const version = await schemaVersion(app.ck.db).catch(() => {
      throw ERRORS.unavailable();
    });
    if (version !== expected) throw ERRORS.unavailable('database is not migrated to this version');
    return { status: 'ready' };
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
