import type { CkError } from './errors.js';

/**
 * Exponential backoff with "equal jitter": attempt n waits between half and all of min(cap, base * 2^n),
 * so retries spread out but never collapse to zero.
 */
export function backoff(attempt: number, base = 1000, cap = 30_000, random = Math.random): number {
  const d = Math.min(cap, base * 2 ** attempt);
  return d / 2 + (random() * d) / 2;
}

/** The wait before retrying after `err`: the server's Retry-After (plus up to 10% jitter) wins over backoff. */
export function retryDelay(err: CkError, attempt: number, base?: number, cap?: number, random = Math.random): number {
  return err.retryAfter !== undefined ? err.retryAfter * (1 + random() / 10) : backoff(attempt, base, cap, random);
}
