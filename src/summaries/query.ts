import type { Db, Queryable } from '../db/types.js';
import type { Timeouts } from '../time.js';
import { userTimezones } from '../users/settings.js';
import { buildSummary, datesBetween, type UserSummary } from './report.js';
import { type DayRow, summaryRows } from './sql.js';

export interface SummaryRequest {
  from: string;
  to: string;
  /** A zone for everyone; undefined: each user's own (UTC when unset). */
  tz?: string;
  /** "HH:MM" */
  dayStart: string;
  nowMs: number;
  timeouts: Timeouts;
}

/** Summaries for users in request order; users without an explicit tz are grouped by their own zone. */
export async function summarize(db: Queryable, users: string[], q: SummaryRequest): Promise<UserSummary[]> {
  const zoneOf = q.tz ? new Map<string, string>() : await userTimezones(db, users);
  const groups = new Map<string, string[]>();
  for (const u of users) {
    const tz = q.tz ?? zoneOf.get(u) ?? 'UTC';
    const g = groups.get(tz);
    if (g) g.push(u);
    else groups.set(tz, [u]);
  }
  const out = new Map<string, UserSummary>();
  const dates = datesBetween(q.from, q.to);
  for (const [tz, group] of groups) {
    const rows = await summaryRows(db, {
      users: group, from: q.from, to: q.to, tz, dayStart: q.dayStart, nowMs: q.nowMs, timeouts: q.timeouts,
    });
    const byUser = new Map<string, DayRow[]>();
    for (const r of rows) {
      const list = byUser.get(r.user_id);
      if (list) list.push(r);
      else byUser.set(r.user_id, [r]);
    }
    for (const u of group) out.set(u, buildSummary(u, tz, q.from, q.to, q.dayStart, byUser.get(u) ?? [], dates));
  }
  return users.map((u) => out.get(u)!);
}

/**
 * User-days per chunk of a team report. PGlite runs each query on ck's own thread, so its chunks are
 * smaller: a query there blocks every other request while it runs (docs/performance.md).
 */
const CHUNK_USER_DAYS = { postgres: 10_000, pglite: 3_000 };

/**
 * Summaries for many users, a chunk at a time: each chunk holds a bounded number of user-days, so one
 * query and the JSON built from it stay small, however long the range or large the page (a team report
 * over a year is streamed, not built whole).
 */
export async function* summarizeInChunks(db: Db, users: string[], q: SummaryRequest): AsyncGenerator<UserSummary[]> {
  const perChunk = Math.max(1, Math.floor(CHUNK_USER_DAYS[db.kind] / datesBetween(q.from, q.to).length));
  for (let i = 0; i < users.length; i += perChunk) yield await summarize(db, users.slice(i, i + perChunk), q);
}

/** A page of all users (for team reports), in user_id order after `after`. */
export async function userPage(db: Queryable, after: string | undefined, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT user_id FROM user_sessions WHERE $1::text IS NULL OR user_id > $1 ORDER BY user_id LIMIT $2`,
    [after ?? null, limit],
  );
  return rows.map((r) => r.user_id);
}
