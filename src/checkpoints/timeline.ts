import type { Queryable } from '../db/types.js';

export interface TimelineRow {
  id: string;
  state: string;
  ts: number;
  next_ts: number | null;
  content: Record<string, unknown> | null;
  source: string;
  received_at: number;
}

/**
 * A page of a user's checkpoints in event-time order with the start of the next one (LEAD()), starting
 * at the state in force at `from` (nothing clipped away) or after the cursor (ts, id).
 * Returns up to limit + 1 rows: the extra one only supplies the last row's end.
 */
export async function timelinePage(
  db: Queryable, user: string, from: number | undefined, after: [number, string] | undefined, limit: number,
): Promise<TimelineRow[]> {
  const { rows } = await db.query<TimelineRow>(
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
    [user, from === undefined ? '-infinity' : new Date(from).toISOString(),
      after ? new Date(after[0]).toISOString() : null, after?.[1] ?? null, limit],
  );
  return rows;
}
