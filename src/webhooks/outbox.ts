import type { Queryable } from '../db/types.js';
import type { StateEvent } from '../events/hub.js';
import { iso } from '../time.js';

/** The event as the enqueue trigger snapshotted it (migration 5), `ts` in epoch ms. */
export interface StoredEvent {
  id: string;
  user_id: string;
  state: string;
  previous_state: string | null;
  ts: number;
  source: string;
  content: Record<string, unknown> | null;
}

/** The SSE event object, keys in the same order as the stream sends them. */
export const toEvent = (e: StoredEvent): StateEvent => ({
  id: e.id, user_id: e.user_id, state: e.state, previous_state: e.previous_state,
  timestamp: iso(e.ts), source: e.source, content: e.content,
});

export interface Claimed {
  id: string;
  webhook_id: string;
  url: string;
  secret: string;
  event: StoredEvent;
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

/** Leases up to `limit` due deliveries, at most one per (webhook, user): the oldest pending. */
export async function claim(db: Queryable, limit: number, leaseMs: number): Promise<Claimed[]> {
  const { rows } = await db.query<Claimed>(
    `SELECT id::text, webhook_id::text, url, secret, event, attempts FROM ck_webhook_claim($1, $2::interval)`,
    [limit, `${leaseMs} milliseconds`],
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

/** Deletes finished deliveries older than `keepSec` (pending ones are never older than the 24 h retry window). */
export async function pruneDeliveries(db: Queryable, keepSec: number, limit = 50_000): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM webhook_deliveries WHERE id IN (
         SELECT id FROM webhook_deliveries
          WHERE created_at < now() - $1::interval AND status <> 'pending' LIMIT $2)
       RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [`${keepSec} seconds`, limit],
  );
  return rows[0]!.n;
}
