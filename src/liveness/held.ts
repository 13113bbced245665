/**
 * What an instance holds of users and their sessions for the heartbeat fast path, in columns.
 *
 * A million users with two sessions each held as objects cost ~600 B per user (an object per user and
 * per session, every epoch-ms field a boxed heap number, a copy of each session id string): 1.9-2.2 GB
 * of RSS. Here a user and a session are slots: numbers in typed arrays, names in plain arrays, a user's
 * sessions a linked list through `sNext`. A session slot carries a generation that changes when the slot
 * is freed, so work that outlives a session (a flush in flight) can tell it is gone (docs/ingest.md).
 */

const NONE = -1;

/** Column storage that grows by half again, never shrinks, and hands freed slots out again. */
class Slots {
  capacity: number;
  private next = 0;
  private readonly free: number[] = [];

  constructor(initial: number, private readonly grow: (capacity: number) => void) {
    this.capacity = initial;
  }

  take(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.next === this.capacity) {
      this.capacity = Math.ceil(this.capacity * 1.5);
      this.grow(this.capacity);
    }
    return this.next++;
  }

  release(slot: number): void {
    this.free.push(slot);
  }

  get live(): number {
    return this.next - this.free.length;
  }
}

function grown<T extends Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array>(a: T, capacity: number): T {
  const b = new (a.constructor as new (n: number) => T)(capacity);
  b.set(a);
  return b;
}

/** Interns short repeated strings (state names; session ids such as "web", "ios") up to `max` entries. */
class Names {
  readonly byIndex: string[] = [];
  private readonly index = new Map<string, number>();
  constructor(private readonly max: number) {}

  /** The shared copy of `name`, or `name` itself when the table is full. */
  shared(name: string): string {
    const i = this.index.get(name);
    if (i !== undefined) return this.byIndex[i]!;
    if (this.byIndex.length < this.max) {
      this.index.set(name, this.byIndex.length);
      this.byIndex.push(name);
    }
    return name;
  }

  /** The index of `name`, adding it (state names are few: every state type ever seen). */
  id(name: string): number {
    const i = this.index.get(name);
    if (i !== undefined) return i;
    this.index.set(name, this.byIndex.length);
    this.byIndex.push(name);
    return this.byIndex.length - 1;
  }
}

export class Held {
  private readonly userSlot = new Map<string, number>();
  private readonly users: Slots;
  private readonly sessions: Slots;
  private readonly states = new Names(Number.MAX_SAFE_INTEGER);
  private readonly sessionIds = new Names(4096);

  // Users.
  private uName: (string | undefined)[] = [];
  private uState: Uint16Array;
  private uSince: Float64Array;
  private uValid: Float64Array;
  private uStale: Uint8Array;
  private uFirst: Int32Array;
  /** Bumped by every write the user's entry learns of (touch, markStale, dropUser): a read started under
   * an older epoch must not overwrite what came after it. */
  private uEpoch: Uint32Array;
  /** When the user was last re-read in the background (0: never). */
  private uRefreshed: Float64Array;

  // Sessions.
  private sId: (string | undefined)[] = [];
  private sUser: Int32Array;
  private sNext: Int32Array;
  private sGen: Uint32Array;
  private sState: Uint16Array;
  /** Newest last_heartbeat / last_active known to be stored. */
  private sPersisted: Float64Array;
  private sActivePersisted: Float64Array;
  /** Newest heartbeat (and newest active one) acknowledged but not yet flushed; 0 when none. */
  private sPendingAt: Float64Array;
  private sPendingActiveAt: Float64Array;

  constructor(initial = 1024) {
    this.uState = new Uint16Array(initial);
    this.uSince = new Float64Array(initial);
    this.uValid = new Float64Array(initial);
    this.uStale = new Uint8Array(initial);
    this.uFirst = new Int32Array(initial);
    this.uEpoch = new Uint32Array(initial);
    this.uRefreshed = new Float64Array(initial);
    this.users = new Slots(initial, (n) => {
      this.uEpoch = grown(this.uEpoch, n);
      this.uRefreshed = grown(this.uRefreshed, n);
      this.uState = grown(this.uState, n);
      this.uSince = grown(this.uSince, n);
      this.uValid = grown(this.uValid, n);
      this.uStale = grown(this.uStale, n);
      this.uFirst = grown(this.uFirst, n);
    });
    this.sUser = new Int32Array(initial);
    this.sNext = new Int32Array(initial);
    this.sGen = new Uint32Array(initial);
    this.sState = new Uint16Array(initial);
    this.sPersisted = new Float64Array(initial);
    this.sActivePersisted = new Float64Array(initial);
    this.sPendingAt = new Float64Array(initial);
    this.sPendingActiveAt = new Float64Array(initial);
    this.sessions = new Slots(initial, (n) => {
      this.sUser = grown(this.sUser, n);
      this.sNext = grown(this.sNext, n);
      this.sGen = grown(this.sGen, n);
      this.sState = grown(this.sState, n);
      this.sPersisted = grown(this.sPersisted, n);
      this.sActivePersisted = grown(this.sActivePersisted, n);
      this.sPendingAt = grown(this.sPendingAt, n);
      this.sPendingActiveAt = grown(this.sPendingActiveAt, n);
    });
  }

  get userCount(): number {
    return this.users.live;
  }

  get sessionCount(): number {
    return this.sessions.live;
  }

  // --- users ---------------------------------------------------------------------------------------

  /** The user's slot, or NONE. */
  user(id: string): number {
    return this.userSlot.get(id) ?? NONE;
  }

  /** The user's slot, created (stale until `setUser`) when absent. */
  userOrNew(id: string): number {
    let u = this.userSlot.get(id);
    if (u === undefined) {
      u = this.users.take();
      this.userSlot.set(id, u);
      this.uName[u] = id;
      this.uState[u] = 0;
      this.uSince[u] = 0;
      this.uValid[u] = 0;
      this.uStale[u] = 1;
      this.uFirst[u] = NONE;
      this.uRefreshed[u] = 0;
    }
    return u;
  }

  setUser(u: number, state: string, since: number, validUntil: number): void {
    this.uState[u] = this.states.id(state);
    this.uSince[u] = since;
    this.uValid[u] = validUntil;
    this.uStale[u] = 0;
  }

  userId(u: number): string {
    return this.uName[u]!;
  }

  state(u: number): string {
    return this.states.byIndex[this.uState[u]!]!;
  }

  since(u: number): number {
    return this.uSince[u]!;
  }

  validUntil(u: number): number {
    return this.uValid[u]!;
  }

  stale(u: number): boolean {
    return this.uStale[u] === 1;
  }

  markStale(u: number): void {
    this.uStale[u] = 1;
    this.touch(u);
  }

  /** A write told something newer of the user: reads started before must not overwrite it. */
  touch(u: number): void {
    this.uEpoch[u] = (this.uEpoch[u]! + 1) >>> 0;
  }

  epoch(u: number): number {
    return this.uEpoch[u]!;
  }

  refreshedAt(u: number): number {
    return this.uRefreshed[u]!;
  }

  setRefreshedAt(u: number, at: number): void {
    this.uRefreshed[u] = at;
  }

  /** Forgets the user and their sessions. */
  dropUser(u: number): void {
    for (let s = this.uFirst[u]!; s !== NONE;) {
      const next = this.sNext[s]!;
      this.freeSession(s);
      s = next;
    }
    this.userSlot.delete(this.uName[u]!);
    this.uName[u] = undefined;
    this.touch(u);
    this.users.release(u);
  }

  /** Every user slot (a snapshot: the callback may drop users). */
  eachUser(f: (u: number) => void): void {
    for (const u of [...this.userSlot.values()]) f(u);
  }

  // --- sessions ------------------------------------------------------------------------------------

  firstSession(u: number): number {
    return this.uFirst[u]!;
  }

  nextSession(s: number): number {
    return this.sNext[s]!;
  }

  /** The user's session named `id`, or NONE. */
  session(u: number, id: string): number {
    for (let s = this.uFirst[u]!; s !== NONE; s = this.sNext[s]!) if (this.sId[s] === id) return s;
    return NONE;
  }

  addSession(u: number, id: string): number {
    const s = this.sessions.take();
    this.sId[s] = this.sessionIds.shared(id);
    this.sUser[s] = u;
    this.sNext[s] = this.uFirst[u]!;
    this.uFirst[u] = s;
    this.sState[s] = 0;
    this.sPersisted[s] = 0;
    this.sActivePersisted[s] = 0;
    this.sPendingAt[s] = 0;
    this.sPendingActiveAt[s] = 0;
    return s;
  }

  /** Unlinks the session from its user and frees its slot. */
  removeSession(s: number): void {
    const u = this.sUser[s]!;
    if (this.uFirst[u] === s) this.uFirst[u] = this.sNext[s]!;
    else {
      let p = this.uFirst[u]!;
      while (p !== NONE && this.sNext[p] !== s) p = this.sNext[p]!;
      if (p !== NONE) this.sNext[p] = this.sNext[s]!;
    }
    this.freeSession(s);
  }

  private freeSession(s: number): void {
    this.sId[s] = undefined;
    this.sGen[s] = (this.sGen[s]! + 1) >>> 0;
    this.sessions.release(s);
  }

  sessionId(s: number): string {
    return this.sId[s]!;
  }

  ownerOf(s: number): number {
    return this.sUser[s]!;
  }

  generation(s: number): number {
    return this.sGen[s]!;
  }

  sessionState(s: number): string {
    return this.states.byIndex[this.sState[s]!]!;
  }

  setSessionState(s: number, state: string): void {
    this.sState[s] = this.states.id(state);
  }

  persisted(s: number): number {
    return this.sPersisted[s]!;
  }

  activePersisted(s: number): number {
    return this.sActivePersisted[s]!;
  }

  /** Records what is now known to be stored (never moves back). */
  stored(s: number, at: number, activeAt: number): void {
    if (at > this.sPersisted[s]!) this.sPersisted[s] = at;
    if (activeAt > this.sActivePersisted[s]!) this.sActivePersisted[s] = activeAt;
  }

  pendingAt(s: number): number {
    return this.sPendingAt[s]!;
  }

  pendingActiveAt(s: number): number {
    return this.sPendingActiveAt[s]!;
  }

  /** Buffers a heartbeat (newest wins); true when the session had none buffered. */
  buffer(s: number, at: number, activeAt: number): boolean {
    const first = this.sPendingAt[s] === 0;
    if (at > this.sPendingAt[s]!) this.sPendingAt[s] = at;
    if (activeAt > this.sPendingActiveAt[s]!) this.sPendingActiveAt[s] = activeAt;
    return first;
  }

  clearPending(s: number): void {
    this.sPendingAt[s] = 0;
    this.sPendingActiveAt[s] = 0;
  }
}

export { NONE };
