import { backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { CkError } from './errors.js';
import type { Http } from './http.js';
import { type SseEvent, SseParser } from './sse.js';
import type { StateEvent } from './types.js';

export interface SubscribeOptions {
  /** Only these users' changes. Default: every user the token may read. */
  userIds?: string[];
  /** Resume after this event id (e.g. saved from `lastEventId`); events up to it are not delivered. */
  lastEventId?: string;
  /** Reconnect when nothing (not even a keep-alive) arrived for this many ms. Default 45000; 0 = never. */
  stallTimeout?: number;
  /** Longest wait between reconnects, in ms. Default 30000. */
  maxBackoff?: number;
}

/** `connecting` (first attempt), `open`, `reconnecting` (dropped, waiting to retry), `closed` (for good). */
export type SubscriptionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface SubscriptionEvents {
  status: SubscriptionStatus;
  /** A final error (then `closed`: 401 after a token refresh, 403, 422) or the stream's `event: error`. */
  error: CkError;
}

/** How many delivered ids are remembered to drop a repeat. */
const SEEN = 10_000;

/**
 * A live stream of state changes over fetch() (EventSource cannot send Authorization). It reconnects with
 * backoff and `Last-Event-ID`, so the server replays what was missed, and never delivers an id twice.
 * Made by `CkClient.subscribe()`.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  status: SubscriptionStatus = 'connecting';
  /** The id of the last event delivered (opaque). */
  lastEventId?: string;
  private seen = new Set<string>();
  private halt = new AbortController();
  private wake?: () => void;
  private retry = 1000;
  private offOnline?: () => void;

  constructor(private http: Http, private opts: SubscribeOptions, private onEvent: (e: StateEvent) => void) {
    super();
    this.lastEventId = opts.lastEventId;
    if (typeof addEventListener === 'function') {
      const online = () => this.wake?.();
      addEventListener('online', online);
      this.offOnline = () => removeEventListener('online', online);
    }
    // After the caller had a chance to add listeners.
    void Promise.resolve().then(() => this.run());
  }

  /** Closes the stream for good. */
  close(): void {
    if (this.halt.signal.aborted) return;
    this.halt.abort();
    this.offOnline?.();
    this.set('closed');
  }

  private async run(): Promise<void> {
    let attempt = 0;
    this.emit('status', this.status);
    while (!this.halt.signal.aborted) {
      let err: CkError | undefined;
      try {
        await this.connect(() => (attempt = 0));
      } catch (e) {
        if (this.halt.signal.aborted) return;
        err = e instanceof CkError ? e : new CkError('network', 'event stream dropped', { cause: e });
        if (!err.retriable) {
          this.emit('error', err);
          return this.close();
        }
      }
      if (this.halt.signal.aborted) return;
      this.set('reconnecting');
      await this.sleep(err?.retryAfter ?? backoff(attempt++, this.retry, this.opts.maxBackoff ?? 30_000));
    }
  }

  /** One connection, until the server ends it, it fails, or it stalls. */
  private async connect(opened: () => void): Promise<void> {
    const conn = new AbortController();
    const abort = () => conn.abort();
    this.halt.signal.addEventListener('abort', abort);
    const stall = this.opts.stallTimeout ?? 45_000;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const alive = () => {
      clearTimeout(watchdog);
      if (stall) watchdog = setTimeout(abort, stall);
    };
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
      const res = await this.http.request<Response>('GET', '/events', {
        query: { user_id: this.opts.userIds }, headers, signal: conn.signal, stream: true,
      });
      if (!res.body) throw new CkError('network', 'no event stream');
      alive();
      this.set('open');
      opened();
      const parser = new SseParser((e) => this.dispatch(e));
      const reader = res.body.getReader();
      const text = new TextDecoder();
      for (let r; !(r = await reader.read()).done; ) {
        alive();
        parser.push(text.decode(r.value, { stream: true }));
        if (parser.retry !== null) this.retry = parser.retry;
      }
    } finally {
      clearTimeout(watchdog);
      this.halt.signal.removeEventListener('abort', abort);
      conn.abort();
    }
  }

  private dispatch(e: SseEvent): void {
    if (e.type === 'error') {
      let reason = e.data;
      try {
        reason = JSON.parse(e.data).reason ?? reason;
      } catch {
        // plain text
      }
      return this.emit('error', new CkError('stream', reason));
    }
    if (e.type !== 'state' || e.id === null || this.seen.has(e.id)) return;
    let event: StateEvent;
    try {
      event = JSON.parse(e.data);
    } catch {
      return;
    }
    this.seen.add(e.id);
    if (this.seen.size > SEEN) this.seen.delete(this.seen.values().next().value!);
    this.lastEventId = e.id;
    try {
      this.onEvent(event);
    } catch (err) {
      setTimeout(() => {
        throw err;
      });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = undefined;
        this.halt.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
      this.halt.signal.addEventListener('abort', done);
    });
  }

  private set(s: SubscriptionStatus): void {
    if (s !== this.status) this.emit('status', (this.status = s));
  }
}
