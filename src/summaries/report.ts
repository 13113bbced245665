import type { DayRow } from './sql.js';

export interface DaySummary {
  date: string;
  seconds: Record<string, number>;
  total_seconds: number;
}

export interface UserSummary {
  user_id: string;
  tz: string;
  from: string;
  to: string;
  day_start: string;
  days: DaySummary[];
  totals: Record<string, number>;
  total_seconds: number;
}

/** Every local date from..to inclusive (YYYY-MM-DD, calendar arithmetic in UTC). */
export function datesBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

// Sums in integer milliseconds so totals carry no float drift.
const ms = (s: number) => Math.round(s * 1000);

const toSeconds = (o: Record<string, number>) => {
  const out: Record<string, number> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]! / 1000;
  return out;
};
const sum = (o: Record<string, number>) => {
  let t = 0;
  for (const k in o) t += o[k]!;
  return t / 1000;
};

/**
 * Shapes one user's rows into days (every date present, empty ones too) and totals. A page of users
 * passes `dates` (datesBetween(from, to)) computed once.
 */
export function buildSummary(
  user: string, tz: string, from: string, to: string, dayStart: string, rows: DayRow[], dates = datesBetween(from, to),
): UserSummary {
  const byDay = new Map<string, Record<string, number>>();
  const totals: Record<string, number> = {};
  for (const r of rows) {
    const day = byDay.get(r.day) ?? {};
    day[r.state] = (day[r.state] ?? 0) + ms(r.seconds);
    byDay.set(r.day, day);
    totals[r.state] = (totals[r.state] ?? 0) + ms(r.seconds);
  }
  const days = dates.map((date) => {
    const d = byDay.get(date) ?? {};
    return { date, seconds: toSeconds(d), total_seconds: sum(d) };
  });
  return { user_id: user, tz, from, to, day_start: dayStart, days, totals: toSeconds(totals), total_seconds: sum(totals) };
}

const csvField = (v: string) => (/[",\n\r]/.test(v) || /^[=+\-@]/.test(v) ? `"${v.replace(/"/g, '""').replace(/^([=+\-@])/, "'$1")}"` : v);

export const CSV_HEADER = 'user_id,date,tz,state,seconds\r\n';

/** Long-format CSV rows (no header): one line per user, date and state. Formula-looking cells are neutralized. */
export function csvRows(summaries: UserSummary[]): string {
  const lines: string[] = [];
  for (const s of summaries) {
    for (const d of s.days) {
      for (const [state, sec] of Object.entries(d.seconds)) lines.push(`${[csvField(s.user_id), d.date, s.tz, state, String(sec)].join(',')}\r\n`);
    }
  }
  return lines.join('');
}
