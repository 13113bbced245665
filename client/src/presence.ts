import { watchActivity } from './activity.js';
import { retryDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { CkError } from './errors.js';
import type { Http } from './http.js';
import { listen, watchPageLifecycle } from './page-lifecycle.js';
import { CheckpointQueue, defaultStorage, type QueueStorage } from './queue.js';
import { defaultSessionId } from './session-id.js';
import { backgroundTimer, mainTimer, type Schedule } from './timers.js';
import { toIso, toMs } from './time.js';
import type { CheckpointResult, Instant, QueuedCheckpoint, ServerInfo, SessionFields, UserStatus } from './types.js';

export interface PresenceOptions {
  /** Your application's id for the user. */
  userId: string;
  /** Default: one per browser tab (kept across reloads of the tab), or one per Node process. */
  sessionId?: string;
  /** A label for this client, e.g. `web` or `desktop/1.4`, shown in the user's sessions. */
  client?: string;
  /** Browsers: input and page visibility decide `active`. Default false (always active). */
  trackActivity?: boolean;
  /** Seconds without input before the user counts as inactive. Default: the server's `idle_timeout`. */
  idleTimeout?: number;
  /** Milliseconds between heartbeats. Default: a third of the server's `heartbeat_timeout`, ±10%. */
  heartbeatInterval?: number;
  /** Longest wait between retries while ck is unreachable, in ms. Default 30000. */
  maxBackoff?: number;
  /** Where queued checkpoints persist. Default: localStorage in browsers, none in Node. */
  storage?: QueueStorage | null;
  /** Browsers: time heartbeats from a Worker so a hidden tab keeps its pace. Default true. */
  worker?: boolean;
}

/**
 * - `connecting`: started, no answer yet; `online`: the last request was answered;
 * - `offline`: ck is unreachable, retrying with backoff (checkpoints are queued);
 * - `stopped`: by `stop()`, `pagehide`, or a final error (see the `error` event).
 */
export type Connection = 'idle' | 'connecting' | 'online' | 'offline' | 'stopped';

export interface PresenceEvents {
  /** The user's status, whenever its state, online flag, sessions or manual presence change. */
  status: UserStatus;
  error: CkError;
  connection: Connection;
}

export interface SetOptions {
  /** JSON metadata stored with the checkpoint (at most 16 KiB). */
  content?: Record<string, unknown>;
  /** When the change happened. Default: now (the server's clock). */
  timestamp?: Instant;
}

/** What the presence needs from its client: requests, and the server's cached configuration. */
export interface PresenceBackend {
  http: Http;
  config(): Promise<ServerInfo>;
  forgetConfig(): void;
}

const enc = encodeURIComponent;

/**
 * One session of one user: heartbeats while started, this session's state, manual presence, and an
 * offline queue for state changes made while ck is unreachable. Made by `CkClient.presence()`.
 */
export class Presence extends Emitter<PresenceEvents> {
  readonly userId: string;
  readonly sessionId: string;
  connection: Connection = 'idle';
  /** The user's status from the last answer. */
  status?: UserStatus;
  /** Whether this session reports the user as active. */
  active = true;
  private current?: { state: string; content?: Record<string, unknown> };
  private queue: CheckpointQueue;
  private running = false;
  private chain: Promise<unknown> = Promise.resolve();
  private cancelTimer?: () => void;
  private schedule: Schedule = mainTimer;
  private attempt = 0;
  private lastOk = 0;
  private announce = false;
  private kicked = false;
  private watching = false;
  private skew = 0;
  private cfg?: ServerInfo;
  private fatal?: CkError;
  private statusKey?: string;
  private detach: (() => void)[] = [];
  private lifecycle?: () => void;

  constructor(private ck: PresenceBackend, private opts: PresenceOptions) {
    super();
    this.userId = opts.userId;
    this.sessionId = opts.sessionId ?? defaultSessionId();
    const storage = opts.storage === undefined ? defaultStorage() : opts.storage;
    this.queue = new CheckpointQueue(storage, `ck-client:queue:${this.userId}:${this.sessionId}`);
  }

  /** Checkpoints waiting for ck, oldest first. */
  get pending(): readonly QueuedCheckpoint[] {
    return this.queue.items;
  }

  /**
   * Starts the session: a heartbeat (which opens it), queued checkpoints and the current state (if `set`
   * was called), then heartbeats until `stop()`. Resolves after the first attempt; if ck was unreachable it keeps
   * retrying in the background (`connection` is `offline`). Rejects on a final error (401, 403).
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.fatal = undefined;
    this.announce = true;
    this.attempt = 0;
    this.setConnection('connecting');
    if (typeof document === 'object') this.attachBrowser();
    await this.pump();
    if (this.fatal) throw this.fatal;
  }

  /**
   * Sets this session's state (a checkpoint). Resolves `sent` once ck stored it, or `queued` when ck is
   * unreachable: it is then kept (with its time) and sent in order when ck is back. Before `start()` it
   * only sets the state that `start()` announces. Rejects when ck refuses it (e.g. an unknown state).
   */
  set(state: string, o: SetOptions = {}): Promise<'sent' | 'queued'> {
    this.current = { state, content: o.content };
    const at = o.timestamp === undefined ? undefined : toMs(o.timestamp);
    // Its time and activity are those of this call, even if it waits behind a slow request.
    const entry: QueuedCheckpoint = { state, timestamp: at ?? this.serverNow(), content: o.content, active: this.active };
    return this.serial(async () => {
      if (!this.running) {
        if (at !== undefined) this.queue.push(entry);
        return 'queued';
      }
      if (this.queue.length || this.connection === 'offline') {
        this.queue.push(entry);
        return 'queued';
      }
      try {
        // After a long pause (a sleeping laptop, a late timer) the session is gone: renew it first.
        if (this.cfg && this.stale(this.cfg)) await this.beat(this.cfg);
        await this.post(entry, at);
        return 'sent';
      } catch (e) {
        if (!(e instanceof CkError) || !e.retriable) {
          if (e instanceof CkError && (e.code === 'unauthorized' || e.status === 403)) this.halt(e);
          throw e;
        }
        this.queue.push(entry);
        this.failed(e);
        return 'queued';
      }
    });
  }

  /**
   * Sets the user's manual presence (e.g. DoNotDisturb), which outranks every session's state until
   * `until` or `clearManual()`. Needs a server with sessions; not queued while ck is unreachable.
   */
  async setManual(state: string, o: { until?: Instant } = {}): Promise<UserStatus> {
    await this.needSessions('setManual');
    const until = o.until === undefined ? undefined : toIso(o.until);
    const s = await this.ck.http.request<UserStatus>('PUT', `/users/${enc(this.userId)}/presence`, { body: { state, until } });
    this.setStatus(s);
    return s;
  }

  /** Removes the user's manual presence. */
  async clearManual(): Promise<void> {
    await this.needSessions('clearManual');
    await this.ck.http.request('DELETE', `/users/${enc(this.userId)}/presence`);
  }

  /** Reports the user active or not (what `trackActivity` does from input); heartbeats at once on a change. */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    this.kick();
  }

  /**
   * Ends the session at once (`DELETE /users/:id/sessions/:sid`) after sending queued checkpoints if ck is
   * reachable; whatever cannot be sent stays queued for the next start. Against a server without sessions
   * it only stops heartbeats, and the user goes Offline after the heartbeat timeout.
   */
  async stop(): Promise<void> {
    const was = this.running;
    this.teardown();
    this.lifecycle?.();
    this.lifecycle = undefined;
    if (!was) return;
    await this.serial(async () => {
      if (this.connection === 'offline') return;
      try {
        const cfg = await this.ck.config();
        await this.flush(cfg);
        if (cfg.sessions) await this.ck.http.request('DELETE', this.sessionPath()).catch((e) => e.status === 404 || Promise.reject(e));
      } catch {
        // Unreachable now: the session expires by itself after the heartbeat timeout.
      }
    });
    this.setConnection('stopped');
  }

  // ---- the loop: config, queued checkpoints, the current state, a heartbeat; one step at a time ----

  private pump(): Promise<void> {
    return this.serial(async () => {
      this.kicked = false;
      this.cancelTimer?.();
      if (!this.running) return;
      try {
        const cfg = (this.cfg = await this.ck.config());
        if (this.opts.trackActivity && !this.watching && typeof document === 'object') {
          // Once the server's idle_timeout is known.
          this.watching = true;
          const off = watchActivity(() => (this.opts.idleTimeout ?? cfg.idle_timeout) * 1000, (a) => this.setActive(a));
          this.detach.push(() => {
            off();
            this.watching = false;
          });
        }
        // A gap longer than the timeout: the server has ended the session, so announce the state again.
        const gap = this.stale(cfg);
        // The heartbeat first: it (re)creates the session the checkpoints below belong to.
        await this.beat(cfg);
        await this.flush(cfg);
        if ((this.announce || gap) && this.current) await this.announceState();
        this.announce = false;
        this.attempt = 0;
        this.setConnection('online');
        this.later(this.opts.heartbeatInterval ?? ((cfg.heartbeat_timeout * 1000) / 3) * (0.9 + Math.random() / 5));
      } catch (e) {
        this.failed(e);
      }
    });
  }

  /** Sends the current state again; a refusal (e.g. a state since unregistered) is reported, not fatal. */
  private async announceState(): Promise<void> {
    const c = { ...this.current!, active: this.active };
    try {
      await this.post(c);
    } catch (e) {
      if (!(e instanceof CkError) || e.code !== 'http' || e.retriable || e.status === 403) throw e;
      this.emit('error', new CkError('rejected', e.message, { status: e.status, problem: e.problem, checkpoint: { ...c, timestamp: this.serverNow() }, cause: e }));
    }
  }

  /** No answer for longer than the heartbeat timeout: the server has ended the session by now. */
  private stale(cfg: ServerInfo): boolean {
    return Date.now() - this.lastOk > cfg.heartbeat_timeout * 1000;
  }

  private async beat(cfg: ServerInfo): Promise<void> {
    const t0 = Date.now();
    const s = await this.ck.http.request<UserStatus>('POST', '/heartbeat', {
      body: { user_id: this.userId, ...this.sessionFields(cfg, this.active) },
    });
    const t1 = (this.lastOk = Date.now());
    // The server's clock, for the timestamps of queued checkpoints: a skew under a second is noise.
    const skew = Date.parse(s.last_heartbeat) - (t0 + t1) / 2;
    this.skew = Math.abs(skew) < 1000 || Number.isNaN(skew) ? 0 : skew;
    this.setStatus(s);
  }

  /** Sends queued checkpoints, oldest first, each with its own time. Throws (keeping the rest) if ck fails. */
  private async flush(cfg: ServerInfo): Promise<void> {
    for (let c; (c = this.queue.items[0]); this.queue.shift()) {
      if (c.timestamp < this.serverNow() - cfg.max_backfill * 1000) {
        this.emit('error', new CkError('backfill_expired', `checkpoint ${c.state} at ${new Date(c.timestamp).toISOString()} is older than max_backfill; not sent`, { checkpoint: c }));
        continue;
      }
      try {
        await this.post(c, c.timestamp);
      } catch (e) {
        // Refused for itself (422 and the like): drop it, or it would block the queue forever.
        if (!(e instanceof CkError) || e.code !== 'http' || e.retriable || e.status === 403) throw e;
        this.emit('error', new CkError('rejected', e.message, { status: e.status, problem: e.problem, checkpoint: c, cause: e }));
      }
    }
  }

  private async post(c: Omit<QueuedCheckpoint, 'timestamp'>, timestamp?: number): Promise<CheckpointResult> {
    const r = await this.ck.http.request<CheckpointResult>('POST', '/checkpoints', {
      body: { user_id: this.userId, state: c.state, content: c.content, timestamp, ...this.sessionFields(this.cfg, c.active) },
    });
    this.lastOk = Date.now();
    return r;
  }

  /** A server without sessions rejects these fields (422), so they go only where `GET /config` exists. */
  private sessionFields(cfg: ServerInfo | undefined, active?: boolean): SessionFields {
    return cfg?.sessions ? { session_id: this.sessionId, client: this.opts.client, active } : {};
  }

  private failed(e: unknown): void {
    const err = e instanceof CkError ? e : new CkError('network', String(e), { cause: e });
    if (!this.running) return;
    if (!err.retriable) return this.halt(err);
    // Unreachable: the server may come back upgraded, so ask for its configuration again.
    if (err.status === 0) this.ck.forgetConfig();
    this.setConnection('offline');
    this.later(retryDelay(err, this.attempt++, 1000, this.opts.maxBackoff ?? 30_000));
  }

  /** A final error: report it and stop (the session expires on the server by itself). */
  private halt(err: CkError): void {
    this.fatal = err;
    this.teardown();
    this.emit('error', err);
    this.setConnection('stopped');
  }

  private later(ms: number): void {
    this.cancelTimer?.();
    if (this.running) this.cancelTimer = this.schedule(() => void this.pump(), ms);
  }

  /** Runs the loop now (activity changed, the network came back), unless a run is already waiting. */
  private kick(): void {
    if (!this.running || this.kicked) return;
    this.kicked = true;
    this.cancelTimer?.();
    void this.pump();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private serverNow(): number {
    return Date.now() + this.skew;
  }

  private sessionPath(): string {
    return `/users/${enc(this.userId)}/sessions/${enc(this.sessionId)}`;
  }

  private async needSessions(what: string): Promise<void> {
    if (!(await this.ck.config()).sessions) throw new CkError('unsupported', `${what} needs a ck server with sessions (GET /config)`);
  }

  private setStatus(s: UserStatus): void {
    this.status = s;
    const key = JSON.stringify([s.state, s.online, s.state_since, s.manual, s.sessions]);
    if (key !== this.statusKey) this.emit('status', s);
    this.statusKey = key;
  }

  private setConnection(c: Connection): void {
    if (c !== this.connection) this.emit('connection', (this.connection = c));
  }

  private teardown(): void {
    this.running = false;
    this.cancelTimer?.();
    for (const off of this.detach.splice(0)) off();
  }

  private attachBrowser(): void {
    if (this.opts.worker !== false) this.schedule = backgroundTimer();
    this.detach.push(listen(window, 'online', () => this.kick()));
    if (this.opts.trackActivity) this.active = !document.hidden;
    // Leaving (or frozen) ends the session at once, with a keepalive DELETE; back, it starts again.
    this.lifecycle ??= watchPageLifecycle(() => {
      if (!this.running) return;
      this.teardown();
      if (this.cfg?.sessions) this.ck.http.beacon('DELETE', this.sessionPath());
      this.setConnection('stopped');
    }, () => void this.start().catch(() => {}));
  }
}
