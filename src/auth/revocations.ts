import type { Queryable } from '../db/types.js';

/** How often each instance reads new revocations: a revoked token is refused everywhere within this. */
export const REVOCATION_POLL_MS = 500;
// Re-read this far back each time, so a revocation whose transaction committed late is not missed.
const OVERLAP_MS = 30_000;

/**
 * The revoked token ids this instance refuses (token_revocations), kept until each token would have
 * expired anyway. Loaded at start, then polled; reads nothing per request.
 */
export class TokenRevocations {
  private revoked = new Map<string, number>();
  private since = 0;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;

  constructor(private readonly db: Queryable, private readonly onError: (err: unknown) => void) {}

  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => {
      this.polling ??= this.poll().catch(this.onError).finally(() => (this.polling = undefined));
    }, REVOCATION_POLL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.polling;
  }

  has(jti: string): boolean {
    return this.revoked.has(jti);
  }

  /** Reads revocations since the last poll (with overlap) and forgets those whose tokens have expired. */
  async poll(): Promise<void> {
    const { rows } = await this.db.query<{ jti: string; expires_at: number; revoked_at: number }>(
      `SELECT jti, ck_ms(expires_at) AS expires_at, ck_ms(revoked_at) AS revoked_at
         FROM token_revocations WHERE revoked_at >= to_timestamp($1 / 1000.0) AND expires_at > now()`,
      [Math.max(0, this.since - OVERLAP_MS)],
    );
    for (const r of rows) {
      this.revoked.set(r.jti, r.expires_at);
      if (r.revoked_at > this.since) this.since = r.revoked_at;
    }
    const now = Date.now();
    for (const [jti, exp] of this.revoked) if (exp < now) this.revoked.delete(jti);
  }
}
