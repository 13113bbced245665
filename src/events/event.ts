import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/**
 * A change event as the stream and webhooks send it. `id` is the event's id in the log: the id of the
 * user's checkpoint (a `state` event: the user's state changed) or of the session's (a `session` event,
 * streamed only to clients that ask for them). `session_id`: the session whose write caused it (null for a
 * timeout, idle decay or manual presence of a state event).
 */
export interface StateEvent {
  id: string;
  user_id: string;
  session_id: string | null;
  state: string;
  previous_state: string | null;
  timestamp: string;
  source: string;
  content: Record<string, unknown> | null;
}

export type EventType = 'state' | 'session';

/** An event as the database hands it over (the log, or a webhook delivery's snapshot): `ts` in epoch ms. */
export interface EventRow {
  id: string;
  user_id: string;
  session_id?: string | null;
  state: string;
  previous_state: string | null;
  ts: number;
  source: string;
  content: Record<string, unknown> | null;
}

/** The one mapping from a stored event to the API's, keys in the order they are sent. */
export const toEvent = (r: EventRow): StateEvent => ({
  id: r.id, user_id: r.user_id, session_id: r.session_id ?? null, state: r.state, previous_state: r.previous_state,
  timestamp: iso(r.ts), source: r.source, content: r.content,
});

/**
 * Where an event stands in the log's delivery order: its transaction, then its id (docs/events.md).
 * Both are decimal bigints as text.
 */
export interface Position {
  xid: string;
  id: string;
}

const bigger = (a: string, b: string) => (a.length !== b.length ? a.length > b.length : a > b);

/** Whether position `a` comes after `b`. */
export const isAfter = (a: Position, b: Position) => (a.xid === b.xid ? bigger(a.id, b.id) : bigger(a.xid, b.xid));

/** An event as it leaves the log: its position, the event, and its stream frame (made once for every reader). */
export interface LoggedEvent {
  position: Position;
  type: EventType;
  event: StateEvent;
  /** `id: <event id>`, `event: <type>` and the JSON, as Server-Sent Events frame it. */
  frame: string;
}

interface LogRow extends EventRow {
  xid: string;
  type: EventType;
}

const toLogged = (r: LogRow): LoggedEvent => {
  const event = toEvent(r);
  return { position: { xid: r.xid, id: r.id }, type: r.type, event, frame: `id: ${r.id}\nevent: ${r.type}\ndata: ${JSON.stringify(event)}\n\n` };
};

/**
 * Events after `after` that every reader may hand out now (below the oldest transaction still running:
 * an event whose transaction commits later cannot land behind this page), in delivery order, for some
 * users or all, session events too or not.
 */
export async function eventsAfter(
  db: Queryable, after: Position, users: string[] | undefined, limit: number, sessions = true,
): Promise<LoggedEvent[]> {
  const { rows } = await db.query<LogRow>(
    `SELECT id::text, xid::text, type, user_id, session_id, state, previous_state, ck_ms(ts) AS ts, source, content FROM events
      WHERE (xid, id) > ($1::xid8, $2::bigint) AND xid < ck_event_frontier()
        AND ($3::text[] IS NULL OR user_id = ANY ($3)) AND ($5 OR type = 'state')
      ORDER BY xid, id LIMIT $4`,
    [after.xid, after.id, users ?? null, limit, sessions],
  );
  return rows.map(toLogged);
}

/** The position to start from for "everything after now": nothing before the frontier is new. */
export async function currentPosition(db: Queryable): Promise<Position> {
  const { rows } = await db.query<{ xid: string }>('SELECT ck_event_frontier()::text AS xid');
  return { xid: rows[0]!.xid, id: '0' };
}

/**
 * The position of the event a client names in Last-Event-ID. An event no longer kept (pruned, or erased
 * with its user) resolves to just before the oldest event after it: the client may get some events
 * twice, but none is skipped.
 */
export async function positionOf(db: Queryable, eventId: string): Promise<Position> {
  const { rows } = await db.query<{ xid: string | null; found: boolean }>(
    `SELECT coalesce((SELECT xid FROM events WHERE id = $1::bigint), (SELECT min(xid) FROM events WHERE id > $1::bigint))::text AS xid,
            EXISTS (SELECT 1 FROM events WHERE id = $1::bigint) AS found`,
    [eventId],
  );
  const { xid, found } = rows[0]!;
  if (xid === null) return currentPosition(db);
  return found ? { xid, id: eventId } : { xid, id: '0' };
}

/** Deletes events older than `keepSec` (ck_prune_events); Last-Event-ID replays reach back that far. */
export async function pruneEvents(db: Queryable, keepSec: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ck_prune_events($1::interval) AS n`, [`${keepSec} seconds`]);
  return rows[0]!.n;
}

/** Events stay in the log, for replays, this long. */
export const EVENTS_KEEP_SEC = 7 * 86_400;
