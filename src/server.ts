import pino from 'pino';
import { buildApp } from './app.js';
import { countKeys, createKey, keyExists } from './auth/keys.js';
import type { Config } from './config.js';
import { migrate } from './db/migrate.js';
import { openDb, openDirectDb, openPostgresDb } from './db/open.js';
import { openPostgres } from './db/postgres.js';
import { type Db, isUnavailable } from './db/types.js';
import { startJobs } from './jobs/start.js';

/** Loggers never print credentials. */
export const REDACT = ['req.headers.authorization', 'headers.authorization', 'key', '*.key', 'token', '*.token'];

/** The process: open and migrate the database, bootstrap an admin key, serve, shut down gracefully. */
export async function serve(config: Config): Promise<void> {
  const logger = pino({ level: config.logLevel, redact: REDACT });
  const db = await openDb(config);
  // Migrations (and pg_cron's installation) over the direct connection when DATABASE_URL is a pooler.
  const direct = await openDirectDb(config);
  const applied = await migrate(direct ?? db);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  await bootstrapAdminKey(config, db, logger);

  const replica = config.readDatabaseUrl ? await openReplica(config, logger) : undefined;
  const app = await buildApp(config, { db, logger, replica });
  const jobs = await startJobs(app.ck, app.log, direct);
  await direct?.close();
  await app.listen({ port: config.port, host: config.host });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: draining requests, flushing heartbeats');
    const force = setTimeout(() => {
      app.log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    try {
      await jobs.stop();
      await app.close(); // stops accepting, drains in-flight requests, final heartbeat flush
      await replica?.close();
      await db.close();
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** The replica's pool, checked like the primary's; a replica that is down at start is used once it is up. */
async function openReplica(config: Config, logger: pino.Logger): Promise<Db> {
  const url = config.readDatabaseUrl!;
  try {
    return await openPostgresDb(url, config.schema, config.poolSize, { replica: true });
  } catch (err) {
    if (!isUnavailable(err)) throw err;
    logger.warn({ err }, 'the read replica is unreachable; heavy reads go to the primary until it answers');
    return openPostgres({ url, schema: config.schema, poolSize: config.poolSize });
  }
}

async function bootstrapAdminKey(config: Config, db: Awaited<ReturnType<typeof openDb>>, logger: pino.Logger) {
  if (config.apiKey) {
    if (!(await keyExists(db, config.apiKey))) await createKey(db, 'admin (CK_API_KEY)', ['admin'], config.apiKey);
    return;
  }
  if ((await countKeys(db)) > 0) return;
  const created = await createKey(db, 'admin (bootstrap)', ['admin']);
  // Printed once on stdout, outside the structured log; only its hash is stored.
  process.stdout.write(`\nck: created admin API key (shown once, store it now):\n\n  ${created.key}\n\n`);
  logger.info({ key_id: created.id }, 'bootstrap admin key created');
}
