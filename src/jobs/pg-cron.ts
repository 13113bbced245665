import type { Config } from '../config.js';
import type { Db } from '../db/types.js';
import { quoteIdent } from '../db/types.js';
import { EVENTS_KEEP_SEC } from '../events/event.js';
import { WEBHOOK_DELIVERIES_KEEP_SEC } from '../webhooks/outbox.js';

export class CronUnavailableError extends Error {}

/** The jobs pg_cron runs (pg_cron 1.4 schedules by the minute). Names carry the schema: one set per schema. */
export function cronJobs(config: Config, schema: string) {
  const path = `SET search_path TO ${quoteIdent(schema)}, public; `;
  return [
    {
      name: `ck-sweep-${schema}`,
      schedule: '* * * * *',
      command: `${path}SELECT ck_sweep_offline('${config.heartbeatTimeoutSec} seconds'::interval, now(), 100000, '${config.idleTimeoutSec} seconds'::interval)`,
    },
    {
      name: `ck-aggregate-${schema}`,
      schedule: '* * * * *',
      command: `${path}SELECT ck_aggregate_summaries(now(), '${config.heartbeatTimeoutSec} seconds'::interval, 1000, '${config.idleTimeoutSec} seconds'::interval)`,
    },
    {
      name: `ck-event-prune-${schema}`,
      schedule: '*/10 * * * *',
      command: `${path}SELECT ck_prune_events('${EVENTS_KEEP_SEC} seconds'::interval), ck_prune_tokens()`,
    },
    {
      name: `ck-webhook-prune-${schema}`,
      schedule: '*/10 * * * *',
      command: `${path}SELECT ck_prune_webhook_deliveries('${WEBHOOK_DELIVERIES_KEEP_SEC} seconds'::interval)`,
    },
  ];
}

async function requireCron(db: Db): Promise<string> {
  const { rows } = await db.query<{ ok: boolean; db: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') AS ok, current_database() AS db`,
  );
  if (!rows[0]!.ok) {
    throw new CronUnavailableError(
      'CK_SCHEDULER=pg_cron needs the pg_cron extension in this database: install postgresql-15-cron, add pg_cron ' +
        "to shared_preload_libraries, set cron.database_name, restart, then CREATE EXTENSION pg_cron (README: 'Scheduler')",
    );
  }
  return rows[0]!.db;
}

/** Schedules (or reschedules) ck's jobs with pg_cron in this database. Idempotent. */
export async function installCron(db: Db, config: Config): Promise<string[]> {
  if (db.kind !== 'postgres') throw new CronUnavailableError('CK_SCHEDULER=pg_cron needs PostgreSQL (DATABASE_URL)');
  const database = await requireCron(db);
  const names = [];
  for (const job of cronJobs(config, db.schema)) {
    await db.query(`SELECT cron.schedule_in_database($1, $2, $3, $4)`, [job.name, job.schedule, job.command, database]);
    names.push(job.name);
  }
  return names;
}

export async function uninstallCron(db: Db, config: Config): Promise<string[]> {
  await requireCron(db);
  const names = cronJobs(config, db.schema).map((j) => j.name);
  const { rows } = await db.query<{ jobname: string }>(
    `SELECT jobname FROM cron.job WHERE jobname = ANY($1::text[])`, [names],
  );
  const found = new Set(rows.map((r) => r.jobname));
  const removed = names.filter((n) => found.has(n)); // in the order installCron reports them
  for (const name of removed) await db.query(`SELECT cron.unschedule($1)`, [name]);
  return removed;
}
