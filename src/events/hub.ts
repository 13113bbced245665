import type { Db } from '../db/types.js';
import { currentPosition, eventsAfter, type LoggedEvent, type Position } from './event.js';

export type Listener = (e: LoggedEvent) => void;

export interface HubOptions {
  /** How often the log is read when nothing wakes the hub; default 100 ms. */
  pollMs?: number;
  /** Events per read; default 1000. */
  pageSize?: number;
  onError: (err: unknown) => void;
}

/**
 * Tails the event log (migration 14) for this process and fans events out to subscribers, in the log's
 * delivery order: by transaction, then id, and only events no transaction still running can precede.
 * Whatever wrote them (any instance, the sweep, pg_cron) is seen by every instance within one poll; this
 * instance's own writes wake it at once (`wake`). No LISTEN/NOTIFY: writers never take PostgreSQL's
 * notification lock, and a connection pooler in front of the database changes nothing.
 */
export class EventHub {
  private listeners = new Set<Listener>();
  private position?: Position;
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private again = false;
  private stopped = false;
  private readonly pollMs: number;
  private readonly pageSize: number;

  constructor(private readonly db: Db, private readonly o: HubOptions) {
    this.pollMs = o.pollMs ?? 100;
    this.pageSize = o.pageSize ?? 1000;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  async start(): Promise<void> {
    this.position = await currentPosition(this.db);
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Reads the log now (a write of this instance committed); calls during a read make one more. */
  wake(): void {
    if (this.stopped || !this.position) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.read().catch(this.o.onError).finally(() => {
      this.reading = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  private async read(): Promise<void> {
    for (;;) {
      const page = await eventsAfter(this.db, this.position!, undefined, this.pageSize);
      for (const e of page) {
        this.position = e.position;
        for (const fn of this.listeners) fn(e);
      }
      if (page.length < this.pageSize || this.stopped) return;
    }
  }

  /** Stops reading; a read in progress finishes first (the database may be closing next). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.reading;
    this.listeners.clear();
  }
}
