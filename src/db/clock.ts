import type { Clock } from '../time.js';
import type { Queryable } from './types.js';

/**
 * The database's clock, read without a round trip: Node's clock plus the offset to the database's
 * `clock_timestamp()`, measured at start and every `resyncMs` (half the round trip is the error bound).
 * Every time ck stores comes from it (docs/time-model.md), so instances with skewed clocks agree with each
 * other, with pg_cron and with the sweep about who expired when.
 */
export class DatabaseClock implements Clock {
  private offsetMs = 0;
  private timer?: NodeJS.Timeout;

  private constructor(private readonly db: Queryable, private readonly local: () => number) {}

  /** `local` is this machine's clock (Date.now); tests pass a skewed one. */
  static async start(
    db: Queryable, onError: (err: unknown) => void, opts: { resyncMs?: number; local?: () => number } = {},
  ): Promise<DatabaseClock> {
    const resyncMs = opts.resyncMs ?? 60_000;
    const clock = new DatabaseClock(db, opts.local ?? Date.now);
    await clock.sync();
    clock.timer = setInterval(() => void clock.sync().catch(onError), resyncMs);
    clock.timer.unref();
    return clock;
  }

  now(): number {
    return this.local() + this.offsetMs;
  }

  /** Measures the offset, keeping the best of three samples (the shortest round trip). */
  async sync(): Promise<void> {
    let best: { rtt: number; offset: number } | undefined;
    for (let i = 0; i < 3; i++) {
      const sent = this.local();
      const { rows } = await this.db.query<{ ms: number }>('SELECT ck_ms(clock_timestamp()) AS ms');
      const received = this.local();
      const sample = { rtt: received - sent, offset: rows[0]!.ms - (sent + received) / 2 };
      if (!best || sample.rtt < best.rtt) best = sample;
    }
    this.offsetMs = Math.round(best!.offset);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
