import type { LoggedEvent, Position } from './event.js';
import type { EventHub } from './hub.js';
import { EventStream, type ReadPage, type Sink, type StreamLimits } from './stream.js';

export interface StreamsOptions extends StreamLimits {
  /** Unsent bytes across all streams of this instance; past it the furthest-behind clients are cut off. */
  maxTotalBuffered: number;
  keepAliveMs: number;
  /** Replay pages for some users, or all (undefined), with session events or without. */
  readPage: (users: string[] | undefined, sessions: boolean) => ReadPage;
  onOpen?: () => void;
  onClose?: () => void;
  onCut?: (reason: string) => void;
}

interface Entry {
  stream: EventStream;
  sink: Sink;
  users: string[] | undefined;
  /** Whether the client asked for session events too. */
  sessions: boolean;
}

/**
 * Every event stream of this instance. Fans each event out to the streams that want it: an index by user,
 * so a stream watching one user costs nothing for other users' events. One timer sends keep-alives and
 * enforces the total buffer bound, cutting off the clients furthest behind first.
 */
export class EventStreams {
  private readonly byUser = new Map<string, Set<Entry>>();
  private readonly everyone = new Set<Entry>();
  private readonly all = new Map<Sink, Entry>();
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;
  private ticks = 0;
  // Unsent bytes at the last check plus everything written since: past the bound, check at once.
  private lastTotal = 0;
  private writtenSince = 0;

  constructor(hub: EventHub, private readonly o: StreamsOptions) {
    this.unsubscribe = hub.subscribe((e) => this.deliver(e));
    // Every second: the total bound; every keepAliveMs: a comment on every stream.
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  get size(): number {
    return this.all.size;
  }

  /** Opens a stream on `sink` for `users` (all when undefined) after `from` (live only when undefined); runs its replay. */
  async open(sink: Sink, users: string[] | undefined, from: Position | undefined, sessions = false): Promise<void> {
    const stream = new EventStream(sink, from, this.o, this.o.readPage(users, sessions), (reason) => this.o.onCut?.(reason), (bytes) => {
      this.writtenSince += bytes;
      if (this.lastTotal + this.writtenSince > this.o.maxTotalBuffered) this.enforceTotal();
    });
    const entry: Entry = { stream, sink, users, sessions };
    this.all.set(sink, entry);
    if (users === undefined) this.everyone.add(entry);
    else {
      for (const u of new Set(users)) {
        let set = this.byUser.get(u);
        if (!set) this.byUser.set(u, (set = new Set()));
        set.add(entry);
      }
    }
    this.o.onOpen?.();
    try {
      await stream.start();
    } catch (err) {
      this.close(entry);
      throw err;
    }
    if (sink.closed) this.close(entry);
  }

  /** Forgets the stream on `sink` (its connection closed). */
  closeSink(sink: Sink): void {
    const entry = this.all.get(sink);
    if (entry) this.close(entry);
  }

  /** Ends every stream (shutdown). */
  endAll(): void {
    for (const entry of this.all.values()) {
      entry.sink.end();
      this.close(entry);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    this.endAll();
  }

  private close(entry: Entry): void {
    if (!this.all.delete(entry.sink)) return;
    this.everyone.delete(entry);
    for (const u of entry.users ?? []) {
      const set = this.byUser.get(u);
      set?.delete(entry);
      if (set?.size === 0) this.byUser.delete(u);
    }
    this.o.onClose?.();
  }

  private deliver(e: LoggedEvent): void {
    const session = e.type === 'session';
    for (const entry of this.everyone) if (!session || entry.sessions) entry.stream.offer(e);
    const watchers = this.byUser.get(e.event.user_id);
    if (watchers) for (const entry of watchers) if (!session || entry.sessions) entry.stream.offer(e);
  }

  private tick(): void {
    this.ticks++;
    const keepAlive = (this.ticks * 1000) % this.o.keepAliveMs < 1000;
    const now = Date.now();
    for (const entry of this.all.values()) {
      if (!entry.sink.closed) entry.stream.check(now);
      if (entry.sink.closed) this.close(entry);
      else if (keepAlive) entry.sink.write(': keep-alive\n\n');
    }
    this.enforceTotal();
  }

  /** Cuts off the clients furthest behind until all together are within the total bound. */
  private enforceTotal(): void {
    let total = 0;
    for (const entry of this.all.values()) total += entry.sink.buffered;
    this.writtenSince = 0;
    this.lastTotal = total;
    if (total <= this.o.maxTotalBuffered) return;
    const behind = [...this.all.values()].sort((a, b) => b.sink.buffered - a.sink.buffered);
    for (const entry of behind) {
      if (total <= this.o.maxTotalBuffered) break;
      total -= entry.sink.buffered;
      entry.stream.cutOff('server buffer limit for slow clients reached');
      this.close(entry);
    }
    this.lastTotal = total;
  }
}
