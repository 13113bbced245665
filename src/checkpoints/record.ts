import type { Queryable } from '../db/types.js';
import { DEFAULT_SESSION } from '../liveness/heartbeats.js';
import { intervals, iso, type Timeouts } from '../time.js';

/** A client's checkpoint, validated (rules.ts): `ts` its event time, epoch ms. */
export interface CheckpointInput {
  userId: string;
  /** The session it sets; default DEFAULT_SESSION. */
  sessionId?: string;
  state: string;
  ts: number;
  content?: object;
  client?: string;
  /** Whether it shows the user active (idle decay); default true. */
  active?: boolean;
}

/** What became of one checkpoint of a batch. */
export type CheckpointResult =
  | { status: 'stored'; row: StoredCheckpoint }
  | { status: 'unchanged'; userId: string; sessionId: string; state: string; ts: number }
  | { status: 'unknown_state' };

/** A stored session checkpoint: the session's state change the request made. */
export interface StoredCheckpoint {
  id: string;
  user_id: string;
  session_id: string;
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
 * Writes checkpoints in one transaction (ck_record_checkpoints, migration 15): each sets its session's
 * state, each user's in the order given, state-change-only with back-fill, exactly as one at a time; the
 * users' timelines are recomputed from there. Results in input order.
 */
export async function recordCheckpoints(
  db: Queryable, inputs: CheckpointInput[], nowMs: number, t: Timeouts,
): Promise<CheckpointResult[]> {
  const { rows } = await db.query<Row>(
    `SELECT ord, status, id::text, state, ck_ms(ts) AS ts, content, ck_ms(received_at) AS received_at, previous_state
       FROM ck_record_checkpoints($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::text[], $7::boolean[],
                                  $8, $9::interval, $10::interval)`,
    [
      inputs.map((i) => i.userId), inputs.map((i) => i.sessionId ?? DEFAULT_SESSION), inputs.map((i) => i.state), inputs.map((i) => iso(i.ts)),
      inputs.map((i) => (i.content === undefined ? null : JSON.stringify(i.content))), inputs.map((i) => i.client ?? null),
      inputs.map((i) => i.active ?? true), iso(nowMs), ...intervals(t),
    ],
  );
  const out = new Array<CheckpointResult>(inputs.length);
  for (const r of rows) {
    const input = inputs[r.ord - 1]!;
    out[r.ord - 1] = r.status === 'stored'
      ? { status: 'stored', row: { id: r.id!, user_id: input.userId, session_id: input.sessionId ?? DEFAULT_SESSION, state: r.state, previous_state: r.previous_state, ts: r.ts, content: r.content, source: 'client', received_at: r.received_at } }
      : r.status === 'unchanged' ? { status: 'unchanged', userId: input.userId, sessionId: input.sessionId ?? DEFAULT_SESSION, state: r.state, ts: r.ts } : { status: 'unknown_state' };
  }
  return out;
}

/** One checkpoint, written alone (tools and tests; the API writes through CheckpointWriter). */
export async function recordCheckpoint(db: Queryable, input: CheckpointInput, nowMs: number, t: Timeouts): Promise<CheckpointResult> {
  return (await recordCheckpoints(db, [input], nowMs, t))[0]!;
}
