/** What a checkpoint may carry: the rules every writer of client checkpoints checks (one owner). */

/** `content` is a JSON object of at most this many bytes. */
export const MAX_CONTENT_BYTES = 16 * 1024;
/** A client clock may run this far ahead of ck's. */
export const MAX_FUTURE_MS = 60_000;

/**
 * Why `content` cannot be stored, or undefined when it can: its size as JSON, U+0000 (jsonb cannot hold
 * it) and lone surrogates, in values and in keys.
 */
export function contentProblem(content: object): string | undefined {
  const json = JSON.stringify(content);
  if (Buffer.byteLength(json) > MAX_CONTENT_BYTES) return 'must be at most 16 KiB of JSON';
  // JSON.stringify escapes U+0000 as \u0000 and a lone surrogate (half of a UTF-16 pair, which JSON
  // allows but jsonb refuses with 22P02) as \udXXX, in keys and values alike; pairs stay raw.
  if (/(?<!\\)(?:\\\\)*\\u0000/.test(json)) return 'must not contain NUL (\\u0000) characters';
  if (/(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i.test(json)) return 'must not contain unpaired UTF-16 surrogates (not valid Unicode text)';
  return undefined;
}

/** Why a checkpoint's event time cannot be taken at `nowMs`, or undefined when it can. */
export function timestampProblem(ts: number, nowMs: number, maxBackfillSec: number): string | undefined {
  if (ts > nowMs + MAX_FUTURE_MS) return 'is more than 60 s in the future';
  if (ts < nowMs - maxBackfillSec * 1000) return `is older than CK_MAX_BACKFILL (${maxBackfillSec} s)`;
  return undefined;
}
