/** Request timestamps: an RFC 3339 string or integer epoch milliseconds. Responses: RFC 3339 UTC with ms. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
export const MIN_MS = 0; // 1970-01-01
export const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Parses a request timestamp to epoch ms (truncated to ms); undefined when it is not one. */
export function parseInstant(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= MIN_MS && value <= MAX_MS ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  // Reject calendar nonsense that Date would roll over (Feb 30, hour 24, second 60).
  const check = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  if (check.getUTCMonth() !== mo! - 1 || check.getUTCDate() !== d! || check.getUTCHours() !== h! || check.getUTCSeconds() !== s!) {
    return undefined;
  }
  const frac = (m[7] ?? '').slice(0, 4); // ".123"
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${frac}${m[8]!.toUpperCase()}`);
  return Number.isFinite(ms) && ms >= MIN_MS && ms <= MAX_MS ? ms : undefined;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The timeouts every liveness rule takes (CK_HEARTBEAT_TIMEOUT, CK_IDLE_TIMEOUT; idle 0 = off), seconds. */
export interface Timeouts {
  heartbeatSec: number;
  idleSec: number;
}

/** The two as SQL intervals, in that order. */
export const intervals = (t: Timeouts) => [`${t.heartbeatSec} seconds`, `${t.idleSec} seconds`] as const;
