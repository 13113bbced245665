import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/** A client's checkpoint, validated (rules.ts): `ts` its event time, epoch ms. */
export interface CheckpointInput {
  userId: string;
  state: string;
  ts: number;
  content?: object;
}

/** What became of one checkpoint of a batch. */
export type CheckpointResult =
  | { status: 'stored'; row: StoredCheckpoint }
  | { status: 'unchanged'; userId: string; state: string; ts: number }
  | { status: 'unknown_state' };

export interface StoredCheckpoint {
  id: string;
  user_id: string;
  state: string;
  previous_state: string | null;
  ts: number;
  content: Record<string, unknown> | null;
  source: 'client';
  received_at: number;
}

interface Row {
  ord: number;
  status: 'stored' | 'unchanged' | 'unknown_state';
  id: string | null;
  state: string;
  ts: number;
  content: Record<string, unknown> | null;
  received_at: number;
  previous_state: string | null;
}

/**
 * Writes checkpoints in one transaction (ck_record_checkpoints, migration 14): each user's in the order
 * given, state-change-only with back-fill, exactly as one at a time. Results in input order.
 */
export async function recordCheckpoints(
  db: Queryable, inputs: CheckpointInput[], nowMs: number, timeoutSec: number,
): Promise<CheckpointResult[]> {
  const { rows } = await db.query<Row>(
    `SELECT ord, status, id::text, state, ck_ms(ts) AS ts, content, ck_ms(received_at) AS received_at, previous_state
       FROM ck_record_checkpoints($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[], $5, $6::interval)`,
    [
      inputs.map((i) => i.userId), inputs.map((i) => i.state), inputs.map((i) => iso(i.ts)),
      inputs.map((i) => (i.content === undefined ? null : JSON.stringify(i.content))), iso(nowMs), `${timeoutSec} seconds`,
    ],
  );
  const out = new Array<CheckpointResult>(inputs.length);
  for (const r of rows) {
    const input = inputs[r.ord - 1]!;
    out[r.ord - 1] = r.status === 'stored'
      ? { status: 'stored', row: { id: r.id!, user_id: input.userId, state: r.state, previous_state: r.previous_state, ts: r.ts, content: r.content, source: 'client', received_at: r.received_at } }
      : r.status === 'unchanged' ? { status: 'unchanged', userId: input.userId, state: r.state, ts: r.ts } : { status: 'unknown_state' };
  }
  return out;
}

/** One checkpoint, written alone (tools and tests; the API writes through CheckpointWriter). */
export async function recordCheckpoint(db: Queryable, input: CheckpointInput, nowMs: number, timeoutSec: number): Promise<CheckpointResult> {
  return (await recordCheckpoints(db, [input], nowMs, timeoutSec))[0]!;
}
