import { createKey, generateKeyString, listKeys, revokeKey, SCOPES, type Scope } from '../auth/keys.js';
import { loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { openDb, openDirectDb } from '../db/open.js';
import type { Db } from '../db/types.js';
import { serve } from '../server.js';
import { cronCommand } from './cron.js';

const USAGE = `usage: ck [serve]
       ck migrate
       ck keys create --name NAME --scopes ingest,read,admin | list | revoke ID | generate
       ck cron install | uninstall`;

/**
 * Opens the configured database (the direct connection, CK_DIRECT_DATABASE_URL, when set: these are
 * administrative commands), migrated first unless the command is the migration itself.
 */
async function withDb<T>(fn: (db: Db) => Promise<T>, migrateFirst = true): Promise<T> {
  const config = loadConfig();
  const db = (await openDirectDb(config)) ?? (await openDb(config));
  try {
    if (migrateFirst) await migrate(db);
    return await fn(db);
  } finally {
    await db.close();
  }
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function main(argv: string[]): Promise<void> {
  const [cmd = 'serve', sub, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(loadConfig());
    case 'migrate': {
      const applied = await withDb((db) => migrate(db), false);
      console.log(applied.length ? `applied migrations ${applied.join(', ')}` : 'database is up to date');
      return;
    }
    case 'keys':
      return keys(sub, rest);
    case 'cron':
      return withDb((db) => cronCommand(db, loadConfig(), sub));
    case 'help':
    case '--help':
      console.log(USAGE);
      return;
    default:
      throw new Error(`unknown command "${cmd}"\n${USAGE}`);
  }
}

async function keys(sub: string | undefined, args: string[]): Promise<void> {
  switch (sub) {
    case 'generate':
      console.log(generateKeyString());
      return;
    case 'create': {
      const scopes = (flag(args, 'scopes') ?? 'read').split(',') as Scope[];
      const bad = scopes.filter((s) => !SCOPES.includes(s));
      if (bad.length) throw new Error(`unknown scope(s) ${bad.join(', ')}; valid: ${SCOPES.join(', ')}`);
      const k = await withDb((db) => createKey(db, flag(args, 'name') ?? 'cli', scopes));
      console.log(`${k.key}\n(id ${k.id}, scopes ${k.scopes.join(',')}; the secret is shown once)`);
      return;
    }
    case 'list':
      for (const k of await withDb(listKeys)) console.log(`${k.id}\t${k.scopes.join(',')}\t${k.created_at}\t${k.name}`);
      return;
    case 'revoke': {
      const id = args[0];
      if (!id) throw new Error('usage: ck keys revoke ID');
      if (!(await withDb((db) => revokeKey(db, id)))) throw new Error(`no active key "${id}"`);
      console.log(`revoked ${id}`);
      return;
    }
    default:
      throw new Error(USAGE);
  }
}
