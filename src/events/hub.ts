import type { Db } from '../db/types.js';
import { eventsAfter, eventsById, type StateEvent } from './event.js';

export type Listener = (e: StateEvent) => void;

/**
 * One LISTEN per process on the schema's channel; fans events out to subscribers in memory. Changes made
 * by any instance, the sweep or pg_cron arrive here. After a lost connection it catches up from the
 * newest id it delivered, so subscribers miss nothing.
 */
export class EventHub {
  private listeners = new Set<Listener>();
  private unlisten?: () => Promise<void>;
  private lastId = '0';
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly db: Db, private readonly onError: (err: unknown) => void) {}

  get channel(): string {
    return `ck_events_${this.db.schema}`;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  async start(): Promise<void> {
    const { rows } = await this.db.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM checkpoints');
    this.lastId = rows[0]!.id;
    this.unlisten = await this.db.listen(
      this.channel,
      (payload) => this.enqueue(() => this.deliverIds(payload)),
      () => this.enqueue(() => this.catchUp()),
    );
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Serializes deliveries so events keep their order. */
  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(() => (this.stopped ? undefined : task())).catch(this.onError);
  }

  private async deliverIds(payload: string): Promise<void> {
    const ids = payload.split(',').filter((s) => /^\d+$/.test(s));
    if (ids.length === 0) return;
    this.emit(await eventsById(this.db, ids));
  }

  private async catchUp(): Promise<void> {
    for (;;) {
      const events = await eventsAfter(this.db, this.lastId, undefined, 1000);
      this.emit(events);
      if (events.length < 1000) return;
    }
  }

  // Ids emitted lately: after a reconnect the catch-up and a late NOTIFY can carry the same event.
  private seen = new Set<string>();

  private emit(events: StateEvent[]): void {
    for (const e of events) {
      if (this.seen.has(e.id)) continue;
      this.seen.add(e.id);
      if (this.seen.size > 10_000) this.seen.delete(this.seen.values().next().value!);
      if (BigInt(e.id) > BigInt(this.lastId)) this.lastId = e.id;
      for (const fn of this.listeners) fn(e);
    }
  }

  /** Stops listening; deliveries still queued are dropped (the database may be closing next). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.unlisten?.();
    await this.queue;
    this.listeners.clear();
  }
}
