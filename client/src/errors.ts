import type { Problem, QueuedCheckpoint } from './types.js';

/**
 * What went wrong, by kind:
 * - `network`: ck could not be reached (or did not answer within the request timeout); `status` is 0.
 * - `http`: ck answered with an error status; `status`, `problem` and `retryAfter` say more.
 * - `unauthorized`: 401 even after `getToken` was asked once for a new token. The presence or
 *   subscription that met it has stopped.
 * - `backfill_expired`: a queued checkpoint became older than the server's `max_backfill` before ck was
 *   reachable again; it was not sent (`checkpoint` holds it).
 * - `rejected`: ck refused a queued checkpoint (4xx, e.g. an unregistered state); it was dropped.
 * - `unsupported`: the server predates sessions (`GET /config` is missing); see `CkClient.config()`.
 * - `stream`: the event stream sent `event: error` (e.g. the client read too slowly); it reconnects.
 */
export type CkErrorCode = 'network' | 'http' | 'unauthorized' | 'backfill_expired' | 'rejected' | 'unsupported' | 'stream';

export class CkError extends Error {
  override name = 'CkError';
  /** HTTP status; 0 when there was no answer. */
  status: number;
  /** The server's `application/problem+json` body, when it sent one. */
  problem?: Problem;
  /** Milliseconds the server asked to wait (`Retry-After` on 429 and 503). */
  retryAfter?: number;
  /** The queued checkpoint concerned (`backfill_expired`, `rejected`). */
  checkpoint?: QueuedCheckpoint;

  constructor(
    public code: CkErrorCode,
    message: string,
    extra: { status?: number; problem?: Problem; retryAfter?: number; checkpoint?: QueuedCheckpoint; cause?: unknown } = {},
  ) {
    super(message, { cause: extra.cause });
    this.status = extra.status ?? 0;
    this.problem = extra.problem;
    this.retryAfter = extra.retryAfter;
    this.checkpoint = extra.checkpoint;
  }

  /** Worth trying again later: no answer, a timeout, rate limiting or a server-side failure. */
  get retriable(): boolean {
    const s = this.status;
    return this.code === 'network' || s === 408 || s === 425 || s === 429 || s >= 500;
  }
}
