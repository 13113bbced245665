import type { Queryable } from './db/types.js';
import { iso } from './time.js';

const DAY_MS = 86_400_000;

/** job_runs is kept this long whatever CK_RETENTION_DAYS says. */
export const JOB_RUNS_KEEP_DAYS = 7;

export interface RetentionOptions {
  /** Rows per statement. Default 10,000. */
  batch?: number;
  /** Statements per run at most; a larger backlog drains over the next runs. Default 5. */
  statements?: number;
}

/** What one run deleted (recorded in job_runs and counted in ck_job_items_total). */
export type RetentionResult = { checkpoints_deleted: number; session_history_deleted: number; job_runs_deleted: number };

/**
 * One batch of `ck_delete_old_checkpoints` (migrations/000006_retention.sql): passes the next `batch`
 * checkpoints older than `beforeMs` and deletes at most that many, never the one in force at `beforeMs`.
 * `passed < batch` means caught up; a batch may delete nothing and still not be (users' first checkpoints).
 */
export async function deleteOldCheckpoints(
  db: Queryable, beforeMs: number, batch: number,
): Promise<{ deleted: number; passed: number }> {
  return walkBatch(db, 'ck_delete_old_checkpoints', beforeMs, batch);
}

/**
 * One batch of `ck_delete_old_session_history` (migrations/000019_session_retention.sql): the same walk
 * over session_checkpoints and manual_presence, keeping each session's and each user's row in force at
 * `beforeMs` unless it ended the session or had expired. `passed` is the larger of the two walks.
 */
export async function deleteOldSessionHistory(
  db: Queryable, beforeMs: number, batch: number,
): Promise<{ deleted: number; passed: number }> {
  return walkBatch(db, 'ck_delete_old_session_history', beforeMs, batch);
}

type Walk = 'ck_delete_old_checkpoints' | 'ck_delete_old_session_history';
type Batch = { deleted: number; passed: number };

/** One batch of a positioned retention walk (both SQL functions share the signature). */
async function walkBatch(db: Queryable, fn: Walk, beforeMs: number, batch: number): Promise<Batch> {
  const { rows } = await db.query<Batch>(`SELECT deleted, passed FROM ${fn}($1, $2)`, [iso(beforeMs), batch]);
  return rows[0]!;
}

/** Runs a walk's batches until it has caught up (a short batch) or `statements` ran; the rows deleted. */
async function drain(step: () => Promise<Batch>, batch: number, statements: number): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < statements; i++) {
    const r = await step();
    deleted += r.deleted;
    if (r.passed < batch) break;
  }
  return deleted;
}

/** Deletes at most `batch` job_runs rows started before `beforeMs`. */
export async function pruneJobRuns(db: Queryable, beforeMs: number, batch: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT ck_prune_job_runs($1, $2) AS n', [iso(beforeMs), batch]);
  return rows[0]!.n;
}

/**
 * The retention job (CK_RETENTION_DAYS, docs/retention.md): checkpoints and session histories older
 * than `days` before `nowMs`, and job_runs older than a week, in bounded statements so a run stays short.
 * @example every(db, 'retention', 15_000, (tx) => runRetention(tx, clock.now(), 90), log)
 */
export async function runRetention(
  db: Queryable, nowMs: number, days: number, opts: RetentionOptions = {},
): Promise<RetentionResult> {
  const batch = opts.batch ?? 10_000;
  const statements = opts.statements ?? 5;
  const before = nowMs - days * DAY_MS;
  return {
    checkpoints_deleted: await drain(() => deleteOldCheckpoints(db, before, batch), batch, statements),
    session_history_deleted: await drain(() => deleteOldSessionHistory(db, before, batch), batch, statements),
    job_runs_deleted: await pruneJobRuns(db, nowMs - JOB_RUNS_KEEP_DAYS * DAY_MS, batch),
  };
}
