import type { Db, Queryable } from './types.js';
import { isUnavailable } from './types.js';

/** On every answer a replica served: how stale it may be, ms. */
export const REPLICA_LAG_HEADER = 'x-ck-replica-lag-ms';

/** Where a heavy read runs: the replica, with how stale it may be, or the primary. */
export interface ReadTarget {
  db: Db;
  /** Set when the read goes to the replica: its replay lag, ms (the x-ck-replica-lag-ms header). */
  lagMs?: number;
}

export interface ReadRouterOptions {
  primary: Db;
  /** CK_READ_DATABASE_URL's pool; undefined: every read goes to the primary. */
  replica?: Db;
  /** CK_READ_MAX_LAG_MS: a replica further behind is not used. */
  maxLagMs: number;
  /** A lag reading is reused this long (a busy instance asks once per interval, not per request). */
  cacheMs?: number;
  /** After the replica failed, the primary serves for this long before the replica is tried again. */
  downMs?: number;
  onChange?: (state: 'replica' | 'lagging' | 'down', detail: string) => void;
}

/**
 * Sends heavy reads (summaries, timelines, exports, listings by state) to a streaming replica while it is
 * close enough, and to the primary when it lags more than CK_READ_MAX_LAG_MS or is down. Writes, and reads
 * that must see their own write, never come here.
 *
 * The lag compares the replica's replayed WAL position with the primary's (see `measure`). A replica
 * whose WAL receiver is not streaming counts as down.
 */
export class ReadRouter {
  private reading?: Promise<number>;
  private readAt = 0;
  private readonly samples: { t: number; lsn: bigint }[] = [];
  private downUntil = 0;
  private state?: 'replica' | 'lagging' | 'down';

  constructor(private readonly o: ReadRouterOptions) {}

  get replicated(): boolean {
    return this.o.replica !== undefined;
  }

  /** Where the next heavy read goes. */
  async pick(): Promise<ReadTarget> {
    const replica = this.o.replica;
    if (!replica || Date.now() < this.downUntil) return { db: this.o.primary };
    let lag: number;
    try {
      lag = await this.lag(replica);
    } catch (err) {
      this.down(err);
      return { db: this.o.primary };
    }
    if (lag > this.o.maxLagMs) {
      this.set('lagging', `${lag} ms behind (CK_READ_MAX_LAG_MS ${this.o.maxLagMs})`);
      return { db: this.o.primary };
    }
    this.set('replica', `${lag} ms behind`);
    return { db: replica, lagMs: lag };
  }

  /** Runs a read on the replica (or the primary); if the replica fails as unavailable, again on the primary. */
  async run<T>(fn: (db: Db) => Promise<T>): Promise<{ result: T; lagMs?: number }> {
    const target = await this.pick();
    try {
      return { result: await fn(target.db), lagMs: target.lagMs };
    } catch (err) {
      if (target.db === this.o.primary || !isUnavailable(err)) throw err;
      this.down(err);
      return { result: await fn(this.o.primary) };
    }
  }

  private down(err: unknown): void {
    this.downUntil = Date.now() + (this.o.downMs ?? 1000);
    this.reading = undefined;
    this.set('down', (err as Error).message);
  }

  private set(state: 'replica' | 'lagging' | 'down', detail: string): void {
    if (state !== this.state) this.o.onChange?.(state, detail);
    this.state = state;
  }

  private lag(replica: Queryable): Promise<number> {
    const now = Date.now();
    if (this.reading && now - this.readAt < (this.o.cacheMs ?? 100)) return this.reading;
    this.readAt = now;
    this.reading = this.measure(replica, now);
    this.reading.catch(() => {});
    return this.reading;
  }

  /**
   * How far behind the replica is, ms: 0 when it has replayed everything the primary had flushed when
   * asked; else the time since the primary was where the replica is now (from the primary positions this
   * instance sampled), or, before there are samples, since the last transaction it replayed committed.
   */
  private async measure(replica: Queryable, now: number): Promise<number> {
    const [p, r] = await Promise.all([
      this.o.primary.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn'),
      replica.query<{ recovery: boolean; streaming: boolean; lsn: string | null; since: number | null }>(
        `SELECT pg_is_in_recovery() AS recovery,
                EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming,
                pg_last_wal_replay_lsn()::text AS lsn,
                ck_ms(now()) - ck_ms(pg_last_xact_replay_timestamp()) AS since`,
      ),
    ]);
    const primaryLsn = lsn(p.rows[0]!.lsn);
    this.samples.push({ t: now, lsn: primaryLsn });
    while (this.samples.length > 2 && (this.samples.length > MAX_SAMPLES || now - this.samples[0]!.t > SAMPLE_WINDOW_MS)) this.samples.shift();
    const row = r.rows[0]!;
    // A primary given as the read URL is never behind itself.
    if (!row.recovery) return 0;
    if (!row.streaming || row.lsn === null) {
      throw Object.assign(new Error('the replica is not streaming from the primary'), { code: 'CK_REPLICA_NOT_STREAMING' });
    }
    const replayed = lsn(row.lsn);
    if (replayed >= primaryLsn) return 0;
    let at: number | undefined;
    for (const x of this.samples) if (x.lsn <= replayed) at = x.t;
    if (at !== undefined) return now - at;
    // Behind every sample: at least as old as the oldest, or as the last replayed commit.
    return Math.max(now - this.samples[0]!.t, row.since ?? Number.POSITIVE_INFINITY);
  }
}

const MAX_SAMPLES = 10_000;
const SAMPLE_WINDOW_MS = 10 * 60_000;

/** A WAL position ('16/B374D848') as a number to compare. */
function lsn(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}
