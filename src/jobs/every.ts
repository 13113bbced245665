import { hostname } from 'node:os';
import type { Db } from '../db/types.js';

/** Names this process in job_runs. */
export const INSTANCE_ID = `${hostname()}:${process.pid}`;

export interface JobLogger {
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

/**
 * Runs `fn` every `intervalMs` on whichever instance takes the job's transaction-scoped advisory lock
 * first; the others skip that round. The lock dies with the transaction, so a killed instance hands the
 * job over by the next interval. No overlap within one process either. `runNow` runs at once (still
 * under the lock), even if a round ran recently.
 */
export function every(
  db: Db, name: string, intervalMs: number, fn: (tx: import('../db/types.js').Queryable) => Promise<unknown>,
  log: JobLogger, onRun?: (ms: number, result: unknown) => void,
): { stop(): Promise<void>; runNow(): Promise<boolean> } {
  let running: Promise<boolean> | undefined;
  let stopped = false;
  // The lock only lasts a run, so an instance ticking later in the same interval would run the job again:
  // skip when job_runs shows a run started less than ~one interval ago (database time; 10% for timer jitter).
  const recent = `${Math.floor(intervalMs * 0.9)} milliseconds`;
  const runOnce = async (force: boolean): Promise<boolean> => {
    const started = performance.now();
    const result = await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_xact_lock(hashtextextended($1 || current_schema(), 0)) AS locked`, [`ck.job.${name}`],
      );
      if (!rows[0]!.locked) return { skipped: true as const };
      const { rows: t } = await tx.query<{ at: string; ran: boolean }>(
        `WITH n AS (SELECT clock_timestamp() AS at) SELECT n.at::text AS at, EXISTS (SELECT 1 FROM job_runs r
           WHERE r.job = $1 AND r.started_at > n.at - $2::interval) AS ran FROM n`,
        [name, recent],
      );
      if (t[0]!.ran && !force) return { skipped: true as const };
      const value = await fn(tx);
      await tx.query('INSERT INTO job_runs (job, instance, started_at, result) VALUES ($1, $2, $3, $4)', [
        name, INSTANCE_ID, t[0]!.at, JSON.stringify(value ?? null),
      ]);
      return { value };
    });
    if ('skipped' in result) return false;
    onRun?.(performance.now() - started, result.value);
    return true;
  };
  const tick = () => {
    if (stopped || running) return;
    running = runOnce(false)
      .catch((err) => {
        log.warn({ err, job: name }, 'job failed; will run again next interval');
        return false;
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
    runNow: () => runOnce(true),
  };
}
