import { Batcher } from '../db/batcher.js';
import type { Db } from '../db/types.js';
import type { Clock, Timeouts } from '../time.js';
import { type Beat, type Buffered, flushHeartbeats, type Liveness, readLiveness, type StoredLiveness, writeHeartbeats } from './heartbeats.js';
import { Held, NONE } from './held.js';

export interface CoalescerOptions {
  db: Db;
  clock: Clock;
  timeouts: Timeouts;
  flushIntervalMs: number;
  /** Sessions per flush statement (PGlite prefers smaller statements). */
  chunk: number;
  /** Transactions in flight at once for heartbeats that must be written first (group commit lanes). */
  lanes: number;
  /** After a batch of heartbeats that had to be written committed (it may have written state changes). */
  onCommit?: () => void;
  /** Each batch of cold-cache lookups or heartbeat writes: its size and duration. */
  onBatch?: (kind: 'lookups' | 'heartbeats', size: number, ms: number) => void;
  onFlush?: (sessions: number, ms: number) => void;
  onError?: (err: unknown) => void;
}

export { DEFAULT_SESSION } from './heartbeats.js';

/**
 * The heartbeat fast path (docs/ingest.md). A heartbeat of a session this instance holds alive is
 * acknowledged from memory and buffered; a flush writes the newest time per session in one set-based
 * statement. A user this instance does not hold is looked up in a batch with others (no write) and, when
 * nothing is about to change, joins the fast path at once. Whatever may change state (a new or ended
 * session, a session close to expiry or idle decay, a user whose stored state is about to change by
 * itself, an active heartbeat of an idle session) is written before the response, batched with whatever
 * else arrives meanwhile (group commit). "Close" is two flush intervals: the sweep cannot expire or idle a
 * session while a buffered heartbeat of it waits for its flush.
 */
export class Coalescer {
  private readonly held = new Held();
  // Session slots with a buffered heartbeat, each once: cheaper than a Map rebuilt per flush.
  private pending: number[] = [];
  private flushing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly marginMs: number;
  /** How long before validUntil a flushed user is re-read (refreshDue): a sixth of the timeout. */
  private readonly refreshLeadMs: number;
  coalesced = 0;
  /** Users re-read in the background (refreshDue). */
  refreshed = 0;

  private readonly lookups: Batcher<string, StoredLiveness[]>;
  private readonly writes: Batcher<Beat, StoredLiveness>;

  constructor(private readonly opts: CoalescerOptions) {
    this.timeoutMs = opts.timeouts.heartbeatSec * 1000;
    this.idleMs = opts.timeouts.idleSec * 1000;
    this.marginMs = 2 * opts.flushIntervalMs;
    this.refreshLeadMs = this.timeoutMs / 6;
    this.lookups = new Batcher(async (users) => {
      const byUser = new Map<string, StoredLiveness[]>();
      for (const r of await readLiveness(opts.db, users, opts.timeouts)) {
        const list = byUser.get(r.user_id);
        if (list) list.push(r);
        else byUser.set(r.user_id, [r]);
      }
      return users.map((u) => byUser.get(u) ?? []);
    }, { maxBatch: 10_000, lanes: Math.min(2, opts.lanes), onBatch: (n, ms) => opts.onBatch?.('lookups', n, ms) });
    this.writes = new Batcher(async (beats) => {
      const rows = await writeHeartbeats(opts.db, beats, opts.timeouts);
      const bySession = new Map(rows.map((r) => [`${r.user_id}\u0000${r.session_id}`, r]));
      opts.onCommit?.();
      return beats.map((b) => bySession.get(`${b.user}\u0000${b.session}`)!);
    }, { maxBatch: 10_000, lanes: opts.lanes, keyOf: (b) => b.user, onBatch: (n, ms) => opts.onBatch?.('heartbeats', n, ms) });
  }

  start(): void {
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /** Heartbeats for many sessions: fast ones from memory, the rest looked up, then written, in batches. */
  async beat(beats: Omit<Beat, 'at'>[]): Promise<Liveness[]> {
    const now = this.opts.clock.now();
    const results = new Array<Liveness>(beats.length);
    let slow: Promise<void>[] | undefined;
    for (let i = 0; i < beats.length; i++) {
      const b = beats[i]!;
      const r = this.fast(b.user, b.session, b.active, now);
      if (r) results[i] = r;
      else (slow ??= []).push(this.slow({ ...b, at: now }).then((l) => void (results[i] = l)));
    }
    if (slow) await Promise.all(slow);
    return results;
  }

  /**
   * One heartbeat answered from memory, synchronously; undefined when it needs the database (call beat).
   * The heartbeat route and lane use it to answer without a promise.
   */
  beatKnown(user: string, session: string, active: boolean): Liveness | undefined {
    return this.fast(user, session, active, this.opts.clock.now());
  }

  private fast(user: string, session: string, active: boolean, now: number): Liveness | undefined {
    const h = this.held;
    const u = h.user(user);
    if (u === NONE || h.stale(u) || now >= h.validUntil(u)) return undefined;
    const s = h.session(u, session);
    if (s === NONE || h.persisted(s) + this.timeoutMs - this.marginMs <= now) return undefined;
    // An active heartbeat may bring the session back from idle, or must be stored before its idle decay.
    if (active) {
      const state = h.sessionState(s);
      if (state === 'Away' || (state === 'Online' && this.idleMs > 0 && h.activePersisted(s) + this.idleMs - this.marginMs <= now)) {
        return undefined;
      }
    }
    if (h.buffer(s, now, active ? now : 0)) this.pending.push(s);
    this.coalesced++;
    return { user_id: user, state: h.state(u), state_since: h.since(u), last_heartbeat: now };
  }

  /** A heartbeat not on the fast path: read with others; written first only if it may change state. */
  private async slow(b: Beat): Promise<Liveness> {
    const h = this.held;
    const u = h.user(b.user);
    // Held past validUntil: a read tells whether anything is due (usually not) before a write would.
    if (u === NONE || h.stale(u) || b.at >= h.validUntil(u)) {
      const epoch = u === NONE ? -1 : h.epoch(u);
      const stored = await this.lookups.submit(b.user);
      // A write of the user answered while the read was out is newer than what the read saw.
      const after = h.user(b.user);
      if (stored.length > 0 && (after === NONE || (after === u && h.epoch(after) === epoch))) {
        this.remember(stored, true);
        const r = this.fast(b.user, b.session, b.active, b.at);
        if (r) return r;
      }
    }
    const row = await this.writes.submit(b);
    this.remember([row]);
    return { user_id: row.user_id, state: row.state, state_since: row.state_since, last_heartbeat: Math.max(row.last_heartbeat, b.at) };
  }

  /** Marks a user's cached state stale after another write changed it; the next heartbeat re-reads it. */
  forget(user: string): void {
    const u = this.held.user(user);
    if (u !== NONE) this.held.markStale(u);
  }

  /** The newest buffered (not yet flushed) heartbeat of a user's sessions, if any. */
  pendingFor(user: string): number | undefined {
    const h = this.held;
    const u = h.user(user);
    if (u === NONE) return undefined;
    let newest = 0;
    for (let s = h.firstSession(u); s !== NONE; s = h.nextSession(s)) if (h.pendingAt(s) > newest) newest = h.pendingAt(s);
    return newest || undefined;
  }

  /** A session's buffered (acknowledged, not yet flushed) heartbeat and newest active one; 0 when none. */
  pendingOf(user: string, session: string): { at: number; activeAt: number } {
    const h = this.held;
    const u = h.user(user);
    const s = u === NONE ? NONE : h.session(u, session);
    return s === NONE ? { at: 0, activeAt: 0 } : { at: h.pendingAt(s), activeAt: h.pendingActiveAt(s) };
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
    const h = this.held;
    const batch = this.pending;
    this.pending = [];
    const beats: Buffered[] = batch.map((s) => ({ user: h.userId(h.ownerOf(s)), session: h.sessionId(s), at: h.pendingAt(s), activeAt: h.pendingActiveAt(s) }));
    // A slot freed while its heartbeat is written may be reused: the generation tells them apart.
    const gens = batch.map((s) => h.generation(s));
    // The times stay buffered until written, so /status and the sessions list show them meanwhile; a
    // newer heartbeat during the write raises them, and its session is queued again after the write.
    const started = performance.now();
    let done = 0;
    try {
      for (; done < batch.length; done += this.opts.chunk) {
        const chunk = beats.slice(done, done + this.opts.chunk);
        const written = await flushHeartbeats(this.opts.db, chunk, this.opts.timeouts);
        for (let i = 0; i < chunk.length; i++) {
          const s = batch[done + i]!;
          if (h.generation(s) !== gens[done + i]) continue;
          h.stored(s, chunk[i]!.at, chunk[i]!.activeAt);
          if (h.pendingAt(s) === chunk[i]!.at && h.pendingActiveAt(s) === chunk[i]!.activeAt) h.clearPending(s);
          else this.pending.push(s);
        }
        if (written.length) {
          this.remember(written);
          this.opts.onCommit?.();
        }
      }
      this.opts.onFlush?.(batch.length, performance.now() - started);
      this.refreshDue(batch, gens);
      this.prune();
    } catch (err) {
      // Re-queue what was not written (still buffered; a newer heartbeat that arrived meanwhile is too).
      for (let i = done; i < batch.length; i++) {
        if (h.generation(batch[i]!) === gens[i]) this.pending.push(batch[i]!);
      }
      this.opts.onError?.(err);
      throw err;
    }
  }

  /**
   * Takes what the database says of users and sessions (rows of one user carry the same user fields).
   * `complete`: the rows are all of each user's alive sessions (a lookup), so sessions not among them ended.
   */
  private remember(rows: StoredLiveness[], complete = false): void {
    const h = this.held;
    if (complete) {
      const alive = new Set(rows.map((r) => `${r.user_id}\u0000${r.session_id}`));
      for (const user of new Set(rows.map((r) => r.user_id))) {
        const u = h.user(user);
        if (u === NONE) continue;
        for (let s = h.firstSession(u); s !== NONE;) {
          const next = h.nextSession(s);
          if (!alive.has(`${user}\u0000${h.sessionId(s)}`) && h.pendingAt(s) === 0) h.removeSession(s);
          s = next;
        }
      }
    }
    for (const r of rows) {
      const u = h.userOrNew(r.user_id);
      if (!complete) h.touch(u);
      h.setUser(u, r.state, r.state_since, r.valid_until ?? Number.POSITIVE_INFINITY);
      if (r.session_id === null) continue;
      let s = h.session(u, r.session_id);
      if (r.session_state === null) {
        // The session ended: forget it (a buffered heartbeat of it goes through the slow path at the flush).
        if (s !== NONE && h.pendingAt(s) === 0) h.removeSession(s);
        continue;
      }
      if (s === NONE) s = h.addSession(u, r.session_id);
      h.setSessionState(s, r.session_state);
      h.stored(s, r.session_heartbeat!, r.session_active!);
    }
  }

  private refreshing?: Promise<void>;

  /** Resolves when the background re-read in flight, if any, is done (tests, shutdown). */
  async settled(): Promise<void> {
    await this.refreshing;
  }

  /**
   * What an instance holds of a user is good until the earliest timed change of their sessions as last
   * read (validUntil), so a user heartbeating steadily would leave the fast path for a lookup once per
   * timeout. After a flush moved their heartbeats on, users within a sixth of a timeout of it (at least
   * four flush intervals) are re-read in the background (one batched read, at most once per quarter
   * timeout each) and stay on the fast path: about one read per user per timeout, off the request path.
   */
  private refreshDue(batch: number[], gens: number[]): void {
    if (this.refreshing) return;
    const h = this.held;
    const now = this.opts.clock.now();
    const horizon = now + Math.max(this.refreshLeadMs, 4 * this.opts.flushIntervalMs);
    const users: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i]!;
      if (h.generation(s) !== gens[i]) continue;
      const u = h.ownerOf(s);
      // refreshedAt, set below, also keeps a user with several flushed sessions from being taken twice.
      if (h.stale(u) || h.validUntil(u) >= horizon || h.refreshedAt(u) > now - this.timeoutMs / 4) continue;
      h.setRefreshedAt(u, now);
      users.push(u);
    }
    if (users.length === 0) return;
    this.refreshed += users.length;
    const ids = users.map((u) => h.userId(u));
    const epochs = new Map(users.map((u, i) => [ids[i]!, h.epoch(u)]));
    this.refreshing = (async () => {
      for (let i = 0; i < ids.length; i += 10_000) {
        const rows = await readLiveness(this.opts.db, ids.slice(i, i + 10_000), this.opts.timeouts);
        // A user forgotten or marked stale meanwhile keeps that mark: their next heartbeat re-reads them.
        this.remember(rows.filter((r) => {
          const u = h.user(r.user_id);
          return u !== NONE && !h.stale(u) && h.epoch(u) === epochs.get(r.user_id);
        }), true);
      }
    })().catch((err) => this.opts.onError?.(err)).finally(() => {
      this.refreshing = undefined;
    });
  }

  private lastPrune = 0;

  /** Drops sessions and users whose fast window closed, so memory follows the live population. */
  private prune(): void {
    const now = this.opts.clock.now();
    if (now - this.lastPrune < 30_000) return;
    this.lastPrune = now;
    const h = this.held;
    h.eachUser((u) => {
      let buffered = false;
      for (let s = h.firstSession(u); s !== NONE;) {
        const next = h.nextSession(s);
        if (h.pendingAt(s) !== 0) buffered = true;
        else if (h.persisted(s) + this.timeoutMs < now) h.removeSession(s);
        s = next;
      }
      if (!buffered && (h.firstSession(u) === NONE || h.stale(u))) h.dropUser(u);
    });
  }

  /** Users and sessions held in memory (metrics, benchmarks). */
  get heldCounts(): { users: number; sessions: number } {
    return { users: this.held.userCount, sessions: this.held.sessionCount };
  }

  /** Stops the timer and writes what is buffered (SIGTERM). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    await this.settled();
  }
}
