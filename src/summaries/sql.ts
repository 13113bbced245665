import type { Queryable } from '../db/types.js';
import { intervals, type Timeouts } from '../time.js';

export interface DayRow {
  user_id: string;
  day: string; // YYYY-MM-DD
  state: string;
  seconds: number;
}

export interface SummaryQuery {
  users: string[];
  from: string;
  to: string;
  tz: string;
  /** "HH:MM" */
  dayStart: string;
  nowMs: number;
  timeouts: Timeouts;
}

/** Per user, local day and state, from stored aggregates where exact and live SQL elsewhere. */
export async function summaryRows(db: Queryable, q: SummaryQuery): Promise<DayRow[]> {
  const { rows } = await db.query<DayRow>(
    `SELECT user_id, to_char(day, 'YYYY-MM-DD') AS day, state, seconds
       FROM ck_summaries($1::text[], $2::date, $3::date, $4, $5::interval, $6::timestamptz, $7::interval, $8::interval)`,
    [q.users, q.from, q.to, q.tz, `${q.dayStart}:00`, new Date(q.nowMs).toISOString(), ...intervals(q.timeouts)],
  );
  return rows;
}

/** Runs aggregation batches until nothing is due (or `maxBatches`); returns users processed. */
export async function aggregateSummaries(db: Queryable, nowMs: number, t: Timeouts, batch = 1000, maxBatches = 20) {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const { rows } = await db.query<{ n: number }>(
      `SELECT ck_aggregate_summaries($1::timestamptz, $2::interval, $3, $4::interval) AS n`,
      [new Date(nowMs).toISOString(), intervals(t)[0], batch, intervals(t)[1]],
    );
    total += rows[0]!.n;
    if (rows[0]!.n < batch) break;
  }
  return total;
}

/**
 * How far the stored per-day summaries lag behind `nowMs`, in seconds: since the oldest aggregation that
 * is due became due (0 when none is). Grows without bound when no aggregation runs; a back-filled
 * checkpoint makes its user due from its own time until the next run.
 */
export async function aggregationLagSeconds(db: Queryable, nowMs: number): Promise<number> {
  const { rows } = await db.query<{ lag: number | null }>(
    `SELECT extract(epoch FROM $1::timestamptz - min(due_at))::float8 AS lag FROM summary_progress WHERE due_at <= $1::timestamptz`,
    [new Date(nowMs).toISOString()],
  );
  return Math.max(0, rows[0]?.lag ?? 0);
}
