import type { Queryable } from '../db/types.js';

export interface CheckpointRow {
  id: string | null;
  user_id: string;
  state: string;
  ts: number;
  content: Record<string, unknown> | null;
  source: string;
  received_at: number;
  changed: boolean;
  previous_state: string | null;
}

/** Writes one client checkpoint under the user's row lock (ck_record_checkpoint, migration 2). */
export async function recordCheckpoint(
  db: Queryable,
  input: { userId: string; state: string; ts: number; content?: object; now: number; timeoutSec: number },
): Promise<CheckpointRow> {
  const { rows } = await db.query<CheckpointRow>(
    `SELECT id::text, user_id, state, ck_ms(ts) AS ts, content, source, ck_ms(received_at) AS received_at,
            changed, previous_state
       FROM ck_record_checkpoint($1, $2, $3, $4::jsonb, $5, $6::interval)`,
    [
      input.userId, input.state, new Date(input.ts).toISOString(),
      input.content === undefined ? null : JSON.stringify(input.content),
      new Date(input.now).toISOString(), `${input.timeoutSec} seconds`,
    ],
  );
  return rows[0]!;
}
