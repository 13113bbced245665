import { isAfter, type LoggedEvent, type Position } from './event.js';

/** Where a stream writes: an HTTP response, seen through what pacing needs. */
export interface Sink {
  write(chunk: string): void;
  /** Bytes written but not yet handed to the kernel. */
  readonly buffered: number;
  /** Resolves once the buffer has drained, or the sink closed. */
  drained(): Promise<void>;
  /** Ends the response after what is buffered. */
  end(): void;
  /** Closes the connection at once, dropping what is buffered (kernel buffers too). */
  destroy(): void;
  readonly closed: boolean;
}

export interface StreamLimits {
  /** Events per replay page: one database read each. */
  pageSize: number;
  /**
   * Unsent bytes a client may keep for more than a second before it is cut off (four times as much at
   * once), and a quarter of which pauses a replay until the client reads.
   */
  maxBuffered: number;
  /** Live events held while a replay runs; past this the replay simply reads them from the database. */
  maxHeld: number;
}

/** Reads replay pages: events after `after` (exclusive), in delivery order. */
export type ReadPage = (after: Position, limit: number) => Promise<LoggedEvent[]>;

const ERROR_GRACE_MS = 1000;

/**
 * One client's event stream: a replay from its Last-Event-ID, read page by page and paced by how fast
 * the client reads (the next page is read only once the socket has room, and each read holds a pool
 * connection only for that query), then live events. Live events that arrive during the replay are held
 * (up to maxHeld; beyond that the replay reads them from the database on another pass), so nothing falls
 * between the two, and no event goes out twice: only events after the last one sent are written.
 */
export class EventStream {
  private replaying: boolean;
  private held: LoggedEvent[] = [];
  private overflowed = false;
  private cut = false;

  constructor(
    private readonly sink: Sink,
    /** The position of the last event the client has (its Last-Event-ID); undefined: live only. */
    private cursor: Position | undefined,
    private readonly limits: StreamLimits,
    private readonly readPage: ReadPage,
    private readonly onCut: (reason: string) => void,
    /** Told the size of every write: lets the owner notice a burst before its next periodic check. */
    private readonly onWrite: (bytes: number) => void = () => {},
  ) {
    this.replaying = cursor !== undefined;
  }

  /** Runs the replay (if any) to the live point. Rejects when a page read fails. */
  async start(): Promise<void> {
    while (this.replaying && !this.sink.closed) {
      if (this.sink.buffered > this.limits.maxBuffered / 4) {
        await this.sink.drained();
        continue;
      }
      const page = await this.readPage(this.cursor!, this.limits.pageSize);
      for (const e of page) this.write(e);
      if (page.length === this.limits.pageSize) continue;
      if (this.overflowed) {
        // Live events were dropped from memory while replaying: read them from the database too.
        this.overflowed = false;
        this.held = [];
        continue;
      }
      this.replaying = false;
      const held = this.held;
      this.held = [];
      for (const e of held) this.write(e);
    }
  }

  /** A live event for this stream's users. */
  offer(e: LoggedEvent): void {
    if (this.sink.closed || this.cut) return;
    if (!this.replaying) {
      this.write(e);
      if (this.sink.buffered > 4 * this.limits.maxBuffered) this.cutOff('client too slow: far more than the buffer limit unsent');
      return;
    }
    if (this.overflowed) return;
    if (this.held.length < this.limits.maxHeld) this.held.push(e);
    else {
      this.overflowed = true;
      this.held = [];
    }
  }

  get buffered(): number {
    return this.sink.buffered;
  }

  private behindSince = 0;

  /** Once a second: a client still more than maxBuffered behind after a second is cut off. */
  check(now: number): void {
    if (this.sink.buffered <= this.limits.maxBuffered || this.replaying) {
      this.behindSince = 0;
      return;
    }
    if (this.behindSince === 0) this.behindSince = now;
    else if (now - this.behindSince >= 1000) this.cutOff('client too slow: more than the buffer limit unsent for a second');
  }

  /**
   * Ends the stream because the client does not keep up: an `event: error` saying so, then the
   * connection is closed; if the error cannot get through within a second (a full pipe), the connection
   * is dropped, kernel buffers included. The client reconnects with Last-Event-ID and replays.
   */
  cutOff(reason: string): void {
    if (this.cut || this.sink.closed) return;
    this.cut = true;
    this.sink.write(`event: error\ndata: ${JSON.stringify({ reason: `${reason}; reconnect with Last-Event-ID` })}\n\n`);
    this.sink.end();
    setTimeout(() => this.sink.destroy(), ERROR_GRACE_MS).unref();
    this.onCut(reason);
  }

  private write(e: LoggedEvent): void {
    if (this.cursor !== undefined && !isAfter(e.position, this.cursor)) return;
    this.sink.write(e.frame);
    this.cursor = e.position;
    this.onWrite(e.frame.length);
  }
}
