import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/** A state-change event as the stream and webhooks send it. `id` is the checkpoint id. */
export interface StateEvent {
  id: string;
  user_id: string;
  state: string;
  previous_state: string | null;
  timestamp: string;
  source: string;
  content: Record<string, unknown> | null;
}

/** An event as the database hands it over (ck_events, or the webhook outbox's snapshot): `ts` in epoch ms. */
export interface EventRow {
  id: string;
  user_id: string;
  state: string;
  previous_state: string | null;
  ts: number;
  source: string;
  content: Record<string, unknown> | null;
}

/** The one mapping from a stored event to the API's, keys in the order they are sent. */
export const toEvent = (r: EventRow): StateEvent => ({
  id: r.id, user_id: r.user_id, state: r.state, previous_state: r.previous_state,
  timestamp: iso(r.ts), source: r.source, content: r.content,
});

const EVENT_COLUMNS = `id::text, user_id, state, previous_state, ck_ms(ts) AS ts, source, content`;

/** Events by id, oldest first. */
export async function eventsById(db: Queryable, ids: string[]): Promise<StateEvent[]> {
  const { rows } = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM ck_events($1::bigint[])`, [ids]);
  return rows.map(toEvent);
}

/** Events after `afterId` (replay for Last-Event-ID), oldest first, for some users or all. */
export async function eventsAfter(db: Queryable, afterId: string, users: string[] | undefined, limit: number): Promise<StateEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT ${EVENT_COLUMNS} FROM ck_events(ARRAY(
       SELECT c.id FROM checkpoints c WHERE c.id > $1::bigint AND ($2::text[] IS NULL OR c.user_id = ANY($2))
        ORDER BY c.id LIMIT $3))`,
    [afterId, users ?? null, limit],
  );
  return rows.map(toEvent);
}
