import type { Instant } from './types.js';

/** Epoch milliseconds of a Date, a number (already ms) or an RFC 3339 string. */
export function toMs(t: Instant): number {
  const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t);
  if (Number.isNaN(ms)) throw new TypeError(`not a point in time: ${String(t)}`);
  return ms;
}

export const toIso = (t: Instant): string => new Date(toMs(t)).toISOString();
