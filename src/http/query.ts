import { MAX_MS, MIN_MS, parseInstant } from '../time.js';
import { ERRORS } from './errors.js';

/** A query-string instant: RFC 3339 or digits (epoch ms), within what both backends store. */
export function queryInstant(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseInstant(/^\d{1,16}$/.test(value) ? Number(value) : value);
  if (ms === undefined) throw ERRORS.invalid('querystring', `/${name}`, 'must be an RFC 3339 timestamp or epoch milliseconds');
  return ms;
}

/**
 * A query-string calendar date `YYYY-MM-DD` as epoch ms of its UTC midnight: a real date, from 1970-01-01
 * to 9999-12-31 (the range of request instants; PostgreSQL has no year 0).
 */
export function queryDate(name: string, value: string): number {
  const t = Date.parse(`${value}T00:00:00Z`);
  if (!Number.isFinite(t) || new Date(t).toISOString().slice(0, 10) !== value) {
    throw ERRORS.invalid('querystring', `/${name}`, 'is not a valid date (YYYY-MM-DD)');
  }
  if (t < MIN_MS || t > MAX_MS) throw ERRORS.invalid('querystring', `/${name}`, 'must be between 1970-01-01 and 9999-12-31');
  return t;
}

/** Opaque page cursors: base64url JSON, validated on the way back in. */
export function encodeCursor(v: unknown[]): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

export function decodeCursor<T extends unknown[]>(raw: string | undefined, check: (v: unknown[]) => v is T): T | undefined {
  if (raw === undefined) return undefined;
  try {
    // Cursors hold values read from the database, which never contain NUL (PostgreSQL text cannot).
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'), (_k, x) => {
      if (typeof x === 'string' && x.includes('\u0000')) throw new Error('NUL in cursor');
      return x;
    });
    if (Array.isArray(v) && check(v)) return v;
  } catch {
    // fall through
  }
  throw ERRORS.invalid('querystring', '/cursor', 'is not a cursor this endpoint returned');
}
