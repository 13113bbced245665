import { Batcher } from '../db/batcher.js';
import type { Db } from '../db/types.js';
import type { Clock, Timeouts } from '../time.js';
import { type Beat, type Buffered, flushHeartbeats, type Liveness, readLiveness, type StoredLiveness, writeHeartbeats } from './heartbeats.js';

/** A session this instance holds. */
interface SessionEntry {
  id: string;
  user: UserEntry;
  state: string;
  /** Newest last_heartbeat / last_active known to be stored. */
  persisted: number;
  activePersisted: number;
  /** Newest heartbeat (and newest active one) acknowledged but not yet flushed; 0 when none. */
  pendingAt: number;
  pendingActiveAt: number;
}

/** A user this instance holds: their state as stored, good until `validUntil` unless someone writes. */
interface UserEntry {
  user: string;
  state: string;
  stateSince: number;
  validUntil: number;
  /** Another writer changed the user: the next heartbeat takes the slow path and re-reads it. */
  stale: boolean;
  sessions: SessionEntry[];
}

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
  private users = new Map<string, UserEntry>();
  // Sessions with a buffered heartbeat, each once: cheaper than a Map rebuilt per flush.
  private pending: SessionEntry[] = [];
  private flushing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly marginMs: number;
  coalesced = 0;

  private readonly lookups: Batcher<string, StoredLiveness[]>;
  private readonly writes: Batcher<Beat, StoredLiveness>;

  constructor(private readonly opts: CoalescerOptions) {
    this.timeoutMs = opts.timeouts.heartbeatSec * 1000;
    this.idleMs = opts.timeouts.idleSec * 1000;
    this.marginMs = 2 * opts.flushIntervalMs;
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
    const u = this.users.get(user);
    if (!u || u.stale || now >= u.validUntil) return undefined;
    let s: SessionEntry | undefined;
    for (const x of u.sessions) if (x.id === session) s = x;
    if (!s || s.persisted + this.timeoutMs - this.marginMs <= now) return undefined;
    // An active heartbeat may bring the session back from idle, or must be stored before its idle decay.
    if (active && (s.state === 'Away' || (s.state === 'Online' && this.idleMs > 0 && s.activePersisted + this.idleMs - this.marginMs <= now))) {
      return undefined;
    }
    if (s.pendingAt === 0) this.pending.push(s);
    if (now > s.pendingAt) s.pendingAt = now;
    if (active && now > s.pendingActiveAt) s.pendingActiveAt = now;
    this.coalesced++;
    return { user_id: user, state: u.state, state_since: u.stateSince, last_heartbeat: now };
  }

  /** A heartbeat not on the fast path: read with others; written first only if it may change state. */
  private async slow(b: Beat): Promise<Liveness> {
    const held = this.users.get(b.user);
    if (!held || held.stale) {
      const stored = await this.lookups.submit(b.user);
      if (stored.length > 0) {
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
    const u = this.users.get(user);
    if (u) u.stale = true;
  }

  /** The newest buffered (not yet flushed) heartbeat of a user's sessions, if any. */
  pendingFor(user: string): number | undefined {
    let newest = 0;
    for (const s of this.users.get(user)?.sessions ?? []) if (s.pendingAt > newest) newest = s.pendingAt;
    return newest || undefined;
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
    const beats: Buffered[] = batch.map((s) => ({ user: s.user.user, session: s.id, at: s.pendingAt, activeAt: s.pendingActiveAt }));
    // From here a new heartbeat re-queues its session for the next flush.
    for (const s of batch) {
      s.pendingAt = 0;
      s.pendingActiveAt = 0;
    }
    const started = performance.now();
    let done = 0;
    try {
      for (; done < batch.length; done += this.opts.chunk) {
        const chunk = beats.slice(done, done + this.opts.chunk);
        const written = await flushHeartbeats(this.opts.db, chunk, this.opts.timeouts);
        for (let i = 0; i < chunk.length; i++) {
          const s = batch[done + i]!;
          if (chunk[i]!.at > s.persisted) s.persisted = chunk[i]!.at;
          if (chunk[i]!.activeAt > s.activePersisted) s.activePersisted = chunk[i]!.activeAt;
        }
        if (written.length) {
          this.remember(written);
          this.opts.onCommit?.();
        }
      }
      this.opts.onFlush?.(batch.length, performance.now() - started);
      this.prune();
    } catch (err) {
      // Re-queue what was not written; a newer heartbeat that arrived meanwhile wins.
      for (let i = done; i < batch.length; i++) {
        const s = batch[i]!;
        if (s.pendingAt === 0) this.pending.push(s);
        if (beats[i]!.at > s.pendingAt) s.pendingAt = beats[i]!.at;
        if (beats[i]!.activeAt > s.pendingActiveAt) s.pendingActiveAt = beats[i]!.activeAt;
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
    if (complete) {
      const alive = new Set(rows.map((r) => `${r.user_id}\u0000${r.session_id}`));
      for (const user of new Set(rows.map((r) => r.user_id))) {
        const u = this.users.get(user);
        if (u) u.sessions = u.sessions.filter((s) => alive.has(`${user}\u0000${s.id}`) || s.pendingAt !== 0);
      }
    }
    for (const r of rows) {
      let u = this.users.get(r.user_id);
      if (!u) {
        // Every field present from the start: one object shape, no property store added later.
        u = { user: r.user_id, state: '', stateSince: 0, validUntil: 0, stale: false, sessions: [] };
        this.users.set(r.user_id, u);
      }
      u.state = this.canonical(r.state);
      u.stateSince = r.state_since;
      u.validUntil = r.valid_until ?? Number.POSITIVE_INFINITY;
      u.stale = false;
      if (r.session_id === null) continue;
      let s: SessionEntry | undefined;
      for (const x of u.sessions) if (x.id === r.session_id) s = x;
      if (r.session_state === null) {
        // The session ended: forget it (a buffered heartbeat of it goes through the slow path at the flush).
        if (s && s.pendingAt === 0) u.sessions = u.sessions.filter((x) => x !== s);
        continue;
      }
      if (!s) {
        s = { id: r.session_id, user: u, state: '', persisted: 0, activePersisted: 0, pendingAt: 0, pendingActiveAt: 0 };
        u.sessions.push(s);
      }
      s.state = this.canonical(r.session_state);
      s.persisted = Math.max(s.persisted, r.session_heartbeat!);
      s.activePersisted = Math.max(s.activePersisted, r.session_active!);
    }
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

  /** Drops sessions and users whose fast window closed, so memory follows the live population. */
  private prune(): void {
    const now = this.opts.clock.now();
    if (now - this.lastPrune < 30_000) return;
    this.lastPrune = now;
    for (const [key, u] of this.users) {
      u.sessions = u.sessions.filter((s) => s.pendingAt !== 0 || s.persisted + this.timeoutMs >= now);
      if (u.sessions.length === 0 || u.stale) {
        if (u.sessions.every((s) => s.pendingAt === 0)) this.users.delete(key);
      }
    }
  }

  /** Stops the timer and writes what is buffered (SIGTERM). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
