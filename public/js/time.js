// Dates in an IANA time zone with Intl only (no library): local days, offsets, formatting.
const formatters = new Map();

function partsFormatter(tz) {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Wall-clock fields of instant `t` in `tz`. */
export function zoneParts(t, tz) {
  const p = {};
  for (const { type, value } of partsFormatter(tz).formatToParts(new Date(t))) p[type] = Number(value);
  return p;
}

/** Milliseconds the zone is ahead of UTC at instant `t`. */
function offsetMs(t, tz) {
  const p = zoneParts(t, tz);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
  return wall - (t - (((t % 1000) + 1000) % 1000));
}

/** The instant the wall clock in `tz` shows `date` (YYYY-MM-DD) plus `minutes`. */
export function localInstant(date, minutes, tz) {
  const [y, m, d] = date.split('-').map(Number);
  const wall = Date.UTC(y, m - 1, d) + minutes * 60_000;
  const t = wall - offsetMs(wall, tz);
  return wall - offsetMs(t, tz); // second pass: the offset at the result, not at the guess (DST days)
}

/** The instant of local midnight starting `date` in `tz`. */
export const startOfDay = (date, tz) => localInstant(date, 0, tz);

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local date (YYYY-MM-DD) of instant `t` in `tz`. */
export function dateIn(t, tz) {
  const p = zoneParts(t, tz);
  return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}`;
}

/** Calendar arithmetic on YYYY-MM-DD. */
export function addDays(date, n) {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function zoneList() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const all = new Set(['UTC', ...zones, browserZone()]);
  return [...all].sort((a, b) => (a === 'UTC' ? -1 : b === 'UTC' ? 1 : a.localeCompare(b)));
}

/** "Mon 24 Nov" for a YYYY-MM-DD date. */
export function dayLabel(date, { month = true } = {}) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: 'UTC', weekday: 'short', day: 'numeric', ...(month ? { month: 'short' } : {}),
  }).format(new Date(`${date}T00:00:00Z`));
}

/** "14:05:32" (or with the date: "Mon 24 Nov, 14:05:32") of `t` in `tz`. */
export function timeLabel(t, tz, { date = false, seconds = true } = {}) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone: tz, hourCycle: 'h23', hour: '2-digit', minute: '2-digit',
    ...(seconds ? { second: '2-digit' } : {}),
    ...(date ? { weekday: 'short', day: 'numeric', month: 'short' } : {}),
  }).format(new Date(t));
}

/** "3h 05m", "12m 40s", "8s"; past a day "1d 6h", or "30h" with `{ days: false }`. */
export function duration(ms, { days = true } = {}) {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = days ? Math.floor(s / 86_400) : 0;
  const h = Math.floor((s - d * 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${pad(m)}m` : `${h}h`;
  if (m) return s % 60 ? `${m}m ${pad(s % 60)}s` : `${m}m`;
  return `${s}s`;
}

/** Compact age for the board: "now", "4m", "3h", "2d". */
export function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return 'now';
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
