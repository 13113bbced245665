import { setMaxListeners } from 'node:events';
import type { Db } from '../db/types.js';
import type { EventHub } from '../events/hub.js';
import { type AttemptResult, type Claimed, claim, finish, release } from './outbox.js';
import { sendAttempt, stateChanged } from './send.js';

interface Log {
  warn(obj: object, msg: string): void;
}

export interface WebhookWorkerOptions {
  db: Db;
  /** Wakes the worker as soon as an event is committed (the poll is the fallback). */
  events: EventHub;
  /** First retry delay; doubles per failed attempt up to 1 h (CK_WEBHOOK_RETRY_BASE_MS). */
  retryBaseMs: number;
  log: Log;
  /** Default 1000. */
  pollMs?: number;
  /** Per attempt, from connecting to the response headers; default 15 000 (CK_WEBHOOK_TIMEOUT_MS). */
  timeoutMs?: number;
  /** How long a claimed delivery stays ours; must exceed timeoutMs. Default 60 000. */
  leaseMs?: number;
  /** Deliveries being sent at once by this instance, a safety cap; default 1000. */
  maxInFlight?: number;
  /** Deliveries in flight to one endpoint across all instances; default 16. */
  perEndpoint?: number;
  /** Send to loopback, private and link-local addresses too (CK_WEBHOOK_ALLOW_PRIVATE); default false. */
  allowPrivate?: boolean;
  /** Wall-clock ms for `webhook-timestamp` (the receiver compares it with its own clock). */
  wallClock?: () => number;
}

/**
 * Sends the webhook outbox (migration 5). Runs in every instance: claims are leases taken with
 * SKIP LOCKED, so instances share the work and a user's events still go out one at a time, in order.
 * Attempts are sent concurrently and their results recorded in batches.
 *
 * @example
 *   const worker = new WebhookWorker({ db, events, retryBaseMs: 1000, log });
 *   worker.start();
 *   await worker.stop();
 */
export class WebhookWorker {
  private readonly o: Required<WebhookWorkerOptions>;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private retryAt = 0;
  private unsubscribe?: () => void;
  private readonly abort = new AbortController();
  private claiming?: Promise<void>;
  private wakeAgain = false;
  private recording?: Promise<void>;
  private inFlight = 0;
  private readonly sends = new Set<Promise<void>>();
  private results: AttemptResult[] = [];
  private releases: string[] = [];

  constructor(opts: WebhookWorkerOptions) {
    // Every attempt in flight listens for stop (up to maxInFlight).
    setMaxListeners(0, this.abort.signal);
    this.o = {
      pollMs: 1000, timeoutMs: 15_000, leaseMs: 60_000, maxInFlight: 1000, perEndpoint: 16,
      allowPrivate: false, wallClock: Date.now, ...opts,
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.o.events.subscribe(() => this.wake());
    this.timer = setInterval(() => this.wake(), this.o.pollMs);
    this.timer.unref();
    this.wake();
  }

  /** Stops claiming, interrupts sends in progress (their leases are given back) and records what finished. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    this.unsubscribe?.();
    this.abort.abort();
    await this.claiming;
    await Promise.all(this.sends);
    while (this.recording) await this.recording;
  }

  /** Claims due deliveries now; calls while a claim runs are coalesced into one more. */
  private wake(): void {
    if (this.stopped) return;
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    this.wakeAgain = false;
    this.claiming = this.claimDue().finally(() => {
      this.claiming = undefined;
      if (this.wakeAgain) this.wake();
    });
  }

  private async claimDue(): Promise<void> {
    const room = this.o.maxInFlight - this.inFlight;
    if (room <= 0) return; // a recorded result wakes us
    let batch: Claimed[];
    try {
      batch = await claim(this.o.db, room, Math.max(this.o.leaseMs, this.o.timeoutMs * 2), this.o.perEndpoint);
    } catch (err) {
      this.o.log.warn({ err }, 'claiming webhook deliveries failed; will retry');
      return;
    }
    if (batch.length === room) this.wakeAgain = true;
    this.inFlight += batch.length;
    for (const d of batch) {
      const p = this.send(d).finally(() => this.sends.delete(p));
      this.sends.add(p);
    }
  }

  private async send(d: Claimed): Promise<void> {
    const out = await sendAttempt({
      url: d.url, secrets: d.secrets, id: d.event.id, envelope: stateChanged(d.event), timeoutMs: this.o.timeoutMs,
      allowPrivate: this.o.allowPrivate, nowMs: this.o.wallClock(), stop: this.abort.signal,
    });
    if (out.stopped) this.releases.push(d.id);
    else this.results.push({ id: d.id, attempts: d.attempts, ok: out.ok, code: out.code, error: out.error });
    this.record();
  }

  /** A retry due before the next poll gets a wake-up of its own (backoff below the poll interval). */
  private wakeIn(ms: number): void {
    if (ms >= this.o.pollMs || this.stopped) return;
    const at = Date.now() + Math.max(ms, 0);
    if (this.retryTimer && this.retryAt <= at) return;
    clearTimeout(this.retryTimer);
    this.retryAt = at;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
    }, Math.max(ms, 0));
    this.retryTimer.unref();
  }

  /** Writes finished attempts in batches, one statement each, while more keep arriving. */
  private record(): void {
    if (this.recording) return;
    this.recording = this.recordAll().finally(() => {
      this.recording = undefined;
      if (this.results.length || this.releases.length) this.record();
    });
  }

  private async recordAll(): Promise<void> {
    while (this.results.length || this.releases.length) {
      const results = this.results.splice(0);
      const releases = this.releases.splice(0);
      try {
        const retryIn = await finish(this.o.db, results, this.o.retryBaseMs);
        if (retryIn !== null) this.wakeIn(retryIn);
        await release(this.o.db, releases);
      } catch (err) {
        // The leases run out and the deliveries are retried: at least once, receivers dedupe by webhook-id.
        this.o.log.warn({ err }, 'recording webhook attempts failed; they will be retried');
      }
      this.inFlight -= results.length + releases.length;
      // The next event of each user just recorded may be due now.
      this.wake();
    }
  }
}
