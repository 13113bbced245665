import { pruneTokens } from '../auth/token-store.js';
import type { Context } from '../context.js';
import type { Db } from '../db/types.js';
import { EVENTS_KEEP_SEC, pruneEvents } from '../events/event.js';
import { sweepOffline } from '../liveness/heartbeats.js';
import { runRetention } from '../retention.js';
import { aggregateSummaries } from '../summaries/sql.js';
import { pruneDeliveries, WEBHOOK_DELIVERIES_KEEP_SEC } from '../webhooks/outbox.js';
import { every, type JobLogger } from './every.js';
import { installCron } from './pg-cron.js';

export interface Jobs {
  stop(): Promise<void>;
}

/** Starts the scheduled jobs for CK_SCHEDULER: in-app (advisory-locked), pg_cron (installed), or none. */
export async function startJobs(ck: Context, log: JobLogger, direct?: Db): Promise<Jobs> {
  const { config, db, clock, metrics, timeouts } = ck;
  if (config.scheduler === 'off') return { stop: async () => {} };
  if (config.scheduler === 'pg_cron') {
    await installCron(direct ?? db, config);
    return { stop: async () => {} };
  }
  const jobs = [
    every(db, 'sweep', config.sweepIntervalSec * 1000,
      (tx) => sweepOffline(tx, timeouts, clock.now()), log,
      (ms, n) => metrics.observeJob('sweep', ms, { users_settled: n as number })),
    every(db, 'aggregate', config.aggregateIntervalSec * 1000,
      (tx) => aggregateSummaries(tx, clock.now(), timeouts), log),
    every(db, 'webhook-prune', 600_000, (tx) => pruneDeliveries(tx, WEBHOOK_DELIVERIES_KEEP_SEC), log),
    // The event log, and token grants, revocations and erasure markers that have served their time.
    every(db, 'event-prune', 600_000, async (tx) => (await pruneEvents(tx, EVENTS_KEEP_SEC)) + (await pruneTokens(tx)), log),
  ];
  const days = config.retentionDays;
  if (days !== undefined) {
    jobs.push(every(db, 'retention', 15_000, (tx) => runRetention(tx, clock.now(), days), log,
      (ms, r) => metrics.observeJob('retention', ms, r as Record<string, number>)));
  }
  return { stop: async () => void (await Promise.all(jobs.map((j) => j.stop()))) };
}
