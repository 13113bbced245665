import type { Queryable } from '../db/types.js';
import { intervals, iso, type Timeouts } from '../time.js';

export interface TimelineRow {
  id: string;
  state: string;
  ts: number;
  /**
   * When the state ended: the next checkpoint; for the last one, now, or the first change that is due and
   * not yet written (a heartbeat that ran out, an idle decay, a manual presence's end), if that is earlier.
   */
  end_ts: number;
  /** The last checkpoint (its state holds, or ended by itself and the sweep has not written it yet). */
  open: boolean;
  content: Record<string, unknown> | null;
  source: string;
  /** The session whose write caused it; null for a timeout, idle decay or manual presence. */
  session_id: string | null;
  received_at: number;
}

/**
 * A page of a user's timeline in event-time order, starting at the state in force at `from` (nothing
 * clipped away) or after the cursor (ts, id). Up to limit + 1 rows (the extra one only supplies the last
 * row's end). Undefined when ck does not know the user.
 */
export async function timelinePage(
  db: Queryable, user: string, from: number | undefined, after: [number, string] | undefined, limit: number,
  nowMs: number, t: Timeouts,
): Promise<TimelineRow[] | undefined> {
  const { rows: known } = await db.query('SELECT 1 FROM user_sessions WHERE user_id = $1', [user]);
  if (known.length === 0) return undefined;
  const { rows } = await db.query<Omit<TimelineRow, 'end_ts' | 'open'>>(
    `WITH start AS (
       SELECT CASE WHEN $3::timestamptz IS NOT NULL THEN NULL
                   ELSE coalesce((SELECT c.ts FROM checkpoints c WHERE c.user_id = $1 AND c.ts <= $2::timestamptz
                                   ORDER BY c.ts DESC, c.id DESC LIMIT 1), $2::timestamptz) END AS ts
     )
     SELECT c.id::text, c.state, ck_ms(c.ts) AS ts, c.content, c.source, c.session_id, ck_ms(c.received_at) AS received_at
       FROM checkpoints c, start
      WHERE c.user_id = $1
        AND ($3::timestamptz IS NULL OR (c.ts, c.id) > ($3::timestamptz, $4::bigint))
        AND (start.ts IS NULL OR c.ts >= start.ts)
      ORDER BY c.ts, c.id LIMIT $5 + 1`,
    [user, from === undefined ? '-infinity' : iso(from), after ? iso(after[0]) : null, after?.[1] ?? null, limit],
  );
  const atEnd = rows.length <= limit;
  let openEnd = nowMs;
  if (atEnd && rows.length > 0) {
    const { rows: due } = await db.query<{ ts: number | null }>(
      `SELECT ck_ms(min(ts)) AS ts FROM ck_pending(ARRAY[$1], $2, $3::interval, $4::interval)`, [user, iso(nowMs), ...intervals(t)],
    );
    if (due[0]?.ts != null) openEnd = Math.min(openEnd, due[0].ts);
  }
  return rows.map((r, i) => {
    const next = rows[i + 1];
    return { ...r, end_ts: next ? next.ts : Math.max(openEnd, r.ts), open: atEnd && next === undefined };
  });
}
