import type { Queryable } from '../db/types.js';

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
  timeoutSec: number;
}

/** Per user, local day and state, from stored aggregates where exact and live SQL elsewhere. */
export async function summaryRows(db: Queryable, q: SummaryQuery): Promise<DayRow[]> {
  const { rows } = await db.query<DayRow>(
    `SELECT user_id, to_char(day, 'YYYY-MM-DD') AS day, state, seconds
       FROM ck_summaries($1::text[], $2::date, $3::date, $4, $5::interval, $6::timestamptz, $7::interval)`,
    [q.users, q.from, q.to, q.tz, `${q.dayStart}:00`, new Date(q.nowMs).toISOString(), `${q.timeoutSec} seconds`],
  );
  return rows;
}

/** Runs aggregation batches until nothing is due (or `maxBatches`); returns users processed. */
export async function aggregateSummaries(db: Queryable, nowMs: number, timeoutSec: number, batch = 1000, maxBatches = 20) {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const { rows } = await db.query<{ n: number }>(
      `SELECT ck_aggregate_summaries($1::timestamptz, $2::interval, $3) AS n`,
      [new Date(nowMs).toISOString(), `${timeoutSec} seconds`, batch],
    );
    total += rows[0]!.n;
    if (rows[0]!.n < batch) break;
  }
  return total;
}

let zones: Promise<Set<string>> | undefined;

/** IANA zone names PostgreSQL knows (loaded once). */
export function knownZones(db: Queryable): Promise<Set<string>> {
  zones ??= db.query<{ name: string }>('SELECT name FROM pg_timezone_names')
    .then(({ rows }) => new Set(rows.map((r) => r.name)))
    .catch((err) => {
      zones = undefined;
      throw err;
    });
  return zones;
}

export async function userTimezones(db: Queryable, users: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ user_id: string; timezone: string }>(
    'SELECT user_id, timezone FROM user_settings WHERE user_id = ANY($1::text[])', [users],
  );
  return new Map(rows.map((r) => [r.user_id, r.timezone]));
}
