import { Batcher } from '../db/batcher.js';
import type { Db } from '../db/types.js';
import type { Clock } from '../time.js';
import { flushHeartbeats, type Liveness, readLiveness, writeHeartbeats } from './heartbeats.js';

interface Known {
  user: string;
  state: string;
  stateSince: number;
  /** The newest last_heartbeat known to be stored in the database. */
  persisted: number;
  /** The newest heartbeat acknowledged but not yet flushed; 0 when none. */
  pendingAt: number;
  /** Another writer changed the state: the next heartbeat takes the slow path and re-reads it. */
  stale: boolean;
}

export interface CoalescerOptions {
  db: Db;
  clock: Clock;
  timeoutSec: number;
  flushIntervalMs: number;
  /** Rows per flush statement (PGlite prefers smaller statements). */
  chunk: number;
  /** Transactions in flight at once for heartbeats that must be written first (group commit lanes). */
  lanes: number;
  /** After a batch of heartbeats that had to be written committed (it may have written state changes). */
  onCommit?: () => void;
  /** Each batch of cold-cache lookups or heartbeat writes: its size and duration. */
  onBatch?: (kind: 'lookups' | 'heartbeats', size: number, ms: number) => void;
  onFlush?: (users: number, ms: number) => void;
  onError?: (err: unknown) => void;
}

/**
 * The heartbeat fast path (docs/ingest.md). A heartbeat for a user this instance knows to be alive is
 * acknowledged from memory and its time buffered; a flush writes the newest time per user in one
 * set-based statement. A user this instance does not hold is looked up in a batch with others (no
 * write): alive and not close to expiry, they join the fast path at once. Anything that may change state
 * (unknown, Offline, or close to expiry) is written before the response, batched with whatever else
 * arrives meanwhile (group commit). "Close" is two flush intervals: the sweep cannot expire a user while
 * a buffered heartbeat of theirs is still waiting for its flush.
 */
export class Coalescer {
  private known = new Map<string, Known>();
  // Entries with a buffered heartbeat (pendingAt > 0), each once: cheaper than a Map rebuilt per flush.
  private pending: Known[] = [];
  private flushing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly marginMs: number;
  coalesced = 0;

  private readonly lookups: Batcher<string, Liveness | undefined>;
  private readonly writes: Batcher<{ user: string; at: number }, Liveness>;

  constructor(private readonly opts: CoalescerOptions) {
    this.timeoutMs = opts.timeoutSec * 1000;
    this.marginMs = 2 * opts.flushIntervalMs;
    this.lookups = new Batcher(async (users) => {
      const found = new Map((await readLiveness(opts.db, users)).map((l) => [l.user_id, l]));
      return users.map((u) => found.get(u));
    }, { maxBatch: 10_000, lanes: Math.min(2, opts.lanes), onBatch: (n, ms) => opts.onBatch?.('lookups', n, ms) });
    this.writes = new Batcher(async (beats) => {
      const rows = await writeHeartbeats(opts.db, beats.map((b) => b.user), beats.map((b) => b.at), opts.timeoutSec);
      const byUser = new Map(rows.map((r) => [r.user_id, r]));
      opts.onCommit?.();
      return beats.map((b) => byUser.get(b.user)!);
    }, { maxBatch: 10_000, lanes: opts.lanes, keyOf: (b) => b.user, onBatch: (n, ms) => opts.onBatch?.('heartbeats', n, ms) });
  }

  start(): void {
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /** Heartbeats for many users: fast ones from memory, the rest looked up, then written, in batches. */
  async beat(users: string[]): Promise<Liveness[]> {
    const now = this.opts.clock.now();
    const results = new Array<Liveness>(users.length);
    let slow: Promise<void>[] | undefined;
    for (let i = 0; i < users.length; i++) {
      const r = this.fast(users[i]!, now);
      if (r) results[i] = r;
      else (slow ??= []).push(this.slow(users[i]!, now).then((l) => void (results[i] = l)));
    }
    if (slow) await Promise.all(slow);
    return results;
  }

  /** A user not on the fast path: read with others; written first only if the heartbeat may change state. */
  private async slow(user: string, now: number): Promise<Liveness> {
    const stored = this.known.get(user)?.stale === false ? undefined : await this.lookups.submit(user);
    if (stored && stored.state !== 'Offline' && stored.last_heartbeat + this.timeoutMs - this.marginMs > now) {
      this.remember(stored);
      const r = this.fast(user, now);
      if (r) return r;
    }
    return this.remember(await this.writes.submit({ user, at: now }));
  }

  /**
   * One heartbeat answered from memory, synchronously; undefined when it needs a write (call beat).
   * The heartbeat route and lane use it to answer without a promise.
   */
  beatKnown(user: string): Liveness | undefined {
    return this.fast(user, this.opts.clock.now());
  }

  private fast(user: string, now: number): Liveness | undefined {
    const k = this.known.get(user);
    if (!k || k.stale || k.state === 'Offline' || k.persisted + this.timeoutMs - this.marginMs <= now) return undefined;
    if (k.pendingAt === 0) this.pending.push(k);
    if (now > k.pendingAt) k.pendingAt = now;
    this.coalesced++;
    return { user_id: user, state: k.state, state_since: k.stateSince, last_heartbeat: now };
  }

  /** Marks a user's cached state stale after another write changed it; the next heartbeat re-reads it. */
  forget(user: string): void {
    const k = this.known.get(user);
    if (k) k.stale = true;
  }

  /** The buffered (not yet flushed) heartbeat of a user, if any. */
  pendingFor(user: string): number | undefined {
    return this.known.get(user)?.pendingAt || undefined;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Writes buffered heartbeats. Never overlaps itself: a call during a flush waits for it, then runs. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
    if (this.pending.length === 0) return;
    this.flushing = this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const users = batch.map((k) => k.user);
    const times = batch.map((k) => k.pendingAt);
    // From here a new heartbeat re-queues its entry for the next flush.
    for (const k of batch) k.pendingAt = 0;
    const started = performance.now();
    let done = 0;
    try {
      for (; done < batch.length; done += this.opts.chunk) {
        const end = done + this.opts.chunk;
        const rows = await flushHeartbeats(this.opts.db, users.slice(done, end), times.slice(done, end), this.opts.timeoutSec);
        for (const r of rows) this.remember(r);
      }
      this.opts.onFlush?.(batch.length, performance.now() - started);
      this.prune();
    } catch (err) {
      // Re-queue what was not written; a newer heartbeat that arrived meanwhile wins.
      for (let i = done; i < batch.length; i++) {
        const k = batch[i]!;
        if (k.pendingAt === 0) this.pending.push(k);
        if (times[i]! > k.pendingAt) k.pendingAt = times[i]!;
      }
      this.opts.onError?.(err);
      throw err;
    }
  }

  private remember(r: Liveness): Liveness {
    const k = this.known.get(r.user_id);
    if (k) {
      // Updated in place: a flush touches every live user each second, so no new object each time.
      k.state = this.canonical(r.state);
      k.stateSince = r.state_since;
      k.persisted = r.last_heartbeat;
      k.stale = false;
    } else {
      // Every field present from the start: one object shape, no property store added later.
      this.known.set(r.user_id, {
        user: r.user_id, state: this.canonical(r.state), stateSince: r.state_since, persisted: r.last_heartbeat,
        pendingAt: 0, stale: false,
      });
    }
    return { user_id: r.user_id, state: r.state, state_since: r.state_since, last_heartbeat: r.last_heartbeat };
  }

  // The driver makes a new string for every row's state: a million users held a million copies of
  // "Online". Entries share one string per state name instead.
  private readonly stateNames = new Map<string, string>();
  private canonical(state: string): string {
    const known = this.stateNames.get(state);
    if (known !== undefined) return known;
    this.stateNames.set(state, state);
    return state;
  }

  private lastPrune = 0;

  /** Drops users whose fast window closed, so memory follows the live population. */
  private prune(): void {
    const now = this.opts.clock.now();
    if (now - this.lastPrune < 30_000) return;
    this.lastPrune = now;
    for (const [u, k] of this.known) {
      if (k.pendingAt === 0 && (k.stale || k.persisted + this.timeoutMs < now)) this.known.delete(u);
    }
  }

  /** Stops the timer and writes what is buffered (SIGTERM). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
