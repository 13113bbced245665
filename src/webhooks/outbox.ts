import type { Queryable } from '../db/types.js';
import type { EventRow } from '../events/event.js';

export interface Claimed {
  id: string;
  webhook_id: string;
  url: string;
  /** Secrets to sign with: the current one, and the previous one during a rotation's overlap. */
  secrets: string[];
  /** The event as the enqueue trigger snapshotted it (migration 5). */
  event: EventRow;
  /** Attempts recorded before this one; passed back to `finish` as the lease's version. */
  attempts: number;
}

export interface AttemptResult {
  id: string;
  attempts: number;
  ok: boolean;
  /** HTTP status, when the receiver answered. */
  code: number | null;
  error: string | null;
}

/**
 * Leases up to `limit` due deliveries, at most one per (webhook, user), the oldest pending, and at most
 * `perWebhook` in flight per endpoint across all instances.
 */
export async function claim(db: Queryable, limit: number, leaseMs: number, perWebhook: number): Promise<Claimed[]> {
  const { rows } = await db.query<Claimed>(
    `SELECT id::text, webhook_id::text, url, secrets, event, attempts FROM ck_webhook_claim($1, $2::interval, $3)`,
    [limit, `${leaseMs} milliseconds`, perWebhook],
  );
  return rows;
}

/**
 * Records a batch of attempts in one statement; failures are rescheduled with backoff or marked failed.
 * @returns milliseconds until the soonest retry scheduled, or null when none was.
 */
export async function finish(db: Queryable, results: AttemptResult[], retryBaseMs: number): Promise<number | null> {
  if (results.length === 0) return null;
  const { rows } = await db.query<{ retry_in: number | null }>(
    `SELECT ck_webhook_finish($1::bigint[], $2::integer[], $3::boolean[], $4::integer[], $5::text[], $6) AS retry_in`,
    [
      results.map((r) => r.id), results.map((r) => r.attempts), results.map((r) => r.ok),
      results.map((r) => r.code), results.map((r) => r.error), retryBaseMs,
    ],
  );
  return rows[0]!.retry_in;
}

/** Gives leases back without counting an attempt (shutdown interrupted the send). */
export async function release(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE webhook_deliveries SET locked_until = NULL WHERE id = ANY($1::bigint[]) AND status = 'pending'`, [ids],
  );
}

/** Deliveries not yet delivered nor given up on, across all webhooks. */
export async function countPending(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'`);
  return rows[0]!.n;
}

/** Finished deliveries stay listed (GET /webhooks/:id/deliveries) this long. */
export const WEBHOOK_DELIVERIES_KEEP_SEC = 7 * 86_400;

/** Deletes finished deliveries older than `keepSec` (ck_prune_webhook_deliveries). */
export async function pruneDeliveries(db: Queryable, keepSec: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ck_prune_webhook_deliveries($1::interval) AS n`, [`${keepSec} seconds`]);
  return rows[0]!.n;
}
