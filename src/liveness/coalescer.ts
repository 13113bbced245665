import type { Db } from '../db/types.js';
import type { Clock } from '../time.js';
import { type HeartbeatRow, writeHeartbeats } from './sql.js';

export interface Known {
  state: string;
  stateSince: number;
  /** The newest last_heartbeat known to be stored in the database. */
  persisted: number;
}

export interface HeartbeatResult {
  user_id: string;
  state: string;
  state_since: number;
  last_heartbeat: number;
}

export interface CoalescerOptions {
  db: Db;
  clock: Clock;
  timeoutSec: number;
  flushIntervalMs: number;
  /** Rows per flush statement (PGlite prefers smaller statements). */
  chunk: number;
  onFlush?: (users: number, ms: number) => void;
  onError?: (err: unknown) => void;
}

/**
 * The heartbeat fast path (docs/ingest.md). A heartbeat for a user this instance knows to be alive is
 * acknowledged from memory and its time buffered; a flush writes the newest time per user in one
 * set-based statement. Anything that may change state (unknown, Offline, or close to expiry) is written
 * before the response. "Close" is two flush intervals: the sweep cannot expire a user while a buffered
 * heartbeat of theirs is still waiting for its flush.
 */
export class Coalescer {
  private known = new Map<string, Known>();
  private pending = new Map<string, number>();
  private flushing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly marginMs: number;
  coalesced = 0;

  constructor(private readonly opts: CoalescerOptions) {
    this.timeoutMs = opts.timeoutSec * 1000;
    this.marginMs = 2 * opts.flushIntervalMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /** Heartbeats for many users: fast ones from memory, the rest in one statement. */
  async beat(users: string[]): Promise<HeartbeatResult[]> {
    const now = this.opts.clock.now();
    const results = new Map<string, HeartbeatResult>();
    const slow: string[] = [];
    for (const u of users) {
      if (results.has(u)) continue;
      const k = this.known.get(u);
      if (k && k.state !== 'Offline' && k.persisted + this.timeoutMs - this.marginMs > now) {
        this.pending.set(u, now);
        this.coalesced++;
        results.set(u, { user_id: u, state: k.state, state_since: k.stateSince, last_heartbeat: now });
      } else {
        slow.push(u);
      }
    }
    if (slow.length > 0) {
      const rows = await writeHeartbeats(this.opts.db, slow, slow.map(() => now), this.opts.timeoutSec);
      for (const r of rows) results.set(r.user_id, this.remember(r));
    }
    return users.map((u) => results.get(u)!);
  }

  /** Drops a user's cached state after another write changed it; the next heartbeat re-reads it. */
  forget(user: string): void {
    this.known.delete(user);
  }

  /** The buffered (not yet flushed) heartbeat of a user, if any. */
  pendingFor(user: string): number | undefined {
    return this.pending.get(user);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Writes buffered heartbeats. Never overlaps itself: a call during a flush waits for it, then runs. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
    if (this.pending.size === 0) return;
    this.flushing = this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const started = performance.now();
    const entries = [...batch];
    try {
      for (let i = 0; i < entries.length; i += this.opts.chunk) {
        const part = entries.slice(i, i + this.opts.chunk);
        const rows = await writeHeartbeats(
          this.opts.db, part.map((e) => e[0]), part.map((e) => e[1]), this.opts.timeoutSec,
        );
        for (const r of rows) this.remember(r);
        for (const [u] of part) batch.delete(u);
      }
      this.opts.onFlush?.(entries.length, performance.now() - started);
      this.prune();
    } catch (err) {
      // Re-queue what was not written; newer heartbeats that arrived meanwhile win.
      for (const [u, t] of batch) if (!this.pending.has(u)) this.pending.set(u, t);
      this.opts.onError?.(err);
      throw err;
    }
  }

  private remember(r: HeartbeatRow): HeartbeatResult {
    this.known.set(r.user_id, { state: r.state, stateSince: r.state_since, persisted: r.last_heartbeat });
    return { user_id: r.user_id, state: r.state, state_since: r.state_since, last_heartbeat: r.last_heartbeat };
  }

  private lastPrune = 0;

  /** Drops users whose fast window closed, so memory follows the live population. */
  private prune(): void {
    const now = this.opts.clock.now();
    if (now - this.lastPrune < 30_000) return;
    this.lastPrune = now;
    for (const [u, k] of this.known) {
      if (k.persisted + this.timeoutMs < now && !this.pending.has(u)) this.known.delete(u);
    }
  }

  /** Stops the timer and writes what is buffered (SIGTERM). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
