import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

export interface TimelineRow {
  id: string;
  state: string;
  ts: number;
  /** When the state ended: the next checkpoint, or for the open one now or where the heartbeat ran out. */
  end_ts: number;
  /** The last checkpoint: its state still holds (or ended by timeout, not by another checkpoint). */
  open: boolean;
  content: Record<string, unknown> | null;
  source: string;
  received_at: number;
}

/**
 * A page of a user's checkpoints in event-time order, each with its end (LEAD(); the open one ends as
 * ck_expired_at says), starting at the state in force at `from` (nothing clipped away) or after the
 * cursor (ts, id). Returns up to limit + 1 rows: the extra one only supplies the last row's end.
 * Undefined when ck does not know the user.
 */
export async function timelinePage(
  db: Queryable, user: string, from: number | undefined, after: [number, string] | undefined, limit: number,
  nowMs: number, timeoutSec: number,
): Promise<TimelineRow[] | undefined> {
  const { rows: known } = await db.query<{ e: number | null }>(
    `SELECT ck_ms(ck_expired_at(s.current_state, s.state_since, s.last_heartbeat, $2, $3::interval)) AS e
       FROM user_sessions s WHERE s.user_id = $1`,
    [user, iso(nowMs), `${timeoutSec} seconds`],
  );
  if (known.length === 0) return undefined;
  const openEnd = known[0]!.e ?? nowMs;
  const { rows } = await db.query<Omit<TimelineRow, 'end_ts' | 'open'> & { next_ts: number | null }>(
    `WITH start AS (
       SELECT CASE WHEN $3::timestamptz IS NOT NULL THEN NULL
                   ELSE coalesce((SELECT c.ts FROM checkpoints c WHERE c.user_id = $1 AND c.ts <= $2::timestamptz
                                   ORDER BY c.ts DESC, c.id DESC LIMIT 1), $2::timestamptz) END AS ts
     ), page AS (
       SELECT c.id, c.state, c.ts, c.content, c.source, c.received_at FROM checkpoints c, start
        WHERE c.user_id = $1
          AND ($3::timestamptz IS NULL OR (c.ts, c.id) > ($3::timestamptz, $4::bigint))
          AND (start.ts IS NULL OR c.ts >= start.ts)
        ORDER BY c.ts, c.id LIMIT $5 + 1
     )
     SELECT id::text, state, ck_ms(ts) AS ts, ck_ms(lead(ts) OVER w) AS next_ts, content, source,
            ck_ms(received_at) AS received_at
       FROM page WINDOW w AS (ORDER BY page.ts, page.id) ORDER BY page.ts, page.id`,
    [user, from === undefined ? '-infinity' : iso(from), after ? iso(after[0]) : null, after?.[1] ?? null, limit],
  );
  return rows.map(({ next_ts, ...r }) => ({
    ...r, end_ts: next_ts ?? Math.max(openEnd, r.ts), open: next_ts === null,
  }));
}
