import { isUnavailable, SQLSTATE, sqlState } from './types.js';

export interface BatcherOptions<I> {
  /** Items per batch at most. */
  maxBatch: number;
  /** Batches in flight at once; items of one key always go through the same lane, one batch at a time. */
  lanes: number;
  /** Items with the same key keep their order (default: all items share one lane). */
  keyOf?: (item: I) => string;
  /** Attempts of a batch that failed with a serialization failure (40001) or deadlock (40P01). Default 5. */
  retries?: number;
  /** Told the size of each batch that ran, and how long it took. */
  onBatch?: (size: number, ms: number) => void;
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

const RETRYABLE = new Set<string>([SQLSTATE.serializationFailure, SQLSTATE.deadlockDetected]);

/**
 * Group commit: items submitted while a batch of their lane is running are run together as the next
 * batch, in one call of `run` (one statement or transaction), and each caller gets its own result once
 * that call returned (committed). Nothing waits for a timer: an idle lane runs at once, and under load
 * batches grow by themselves with the time a commit takes.
 *
 * `run` returns one output per item, in order. If it throws, a retryable conflict runs the batch again;
 * an unavailable database fails every item with that error; anything else runs each item alone, so one
 * bad item fails alone and the others commit.
 */
export class Batcher<I, O> {
  private readonly queues: Waiting<I, O>[][];
  private readonly busy: boolean[];

  constructor(private readonly run: (items: I[]) => Promise<O[]>, private readonly o: BatcherOptions<I>) {
    this.queues = Array.from({ length: o.lanes }, () => []);
    this.busy = new Array<boolean>(o.lanes).fill(false);
  }

  submit(item: I): Promise<O> {
    const lane = this.o.keyOf && this.o.lanes > 1 ? hash(this.o.keyOf(item)) % this.o.lanes : 0;
    return new Promise<O>((resolve, reject) => {
      this.queues[lane]!.push({ item, resolve, reject });
      if (!this.busy[lane]) void this.drain(lane);
    });
  }

  /** Items waiting or running, for metrics. */
  get pending(): number {
    return this.queues.reduce((n, q) => n + q.length, 0);
  }

  private async drain(lane: number): Promise<void> {
    this.busy[lane] = true;
    const queue = this.queues[lane]!;
    while (queue.length > 0) {
      const batch = queue.splice(0, this.o.maxBatch);
      await this.runBatch(batch);
    }
    this.busy[lane] = false;
  }

  private async runBatch(batch: Waiting<I, O>[]): Promise<void> {
    const started = performance.now();
    const items = batch.map((w) => w.item);
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.run(items);
        this.o.onBatch?.(batch.length, performance.now() - started);
        batch.forEach((w, i) => w.resolve(out[i]!));
        return;
      } catch (err) {
        if (RETRYABLE.has(sqlState(err) ?? '') && attempt < (this.o.retries ?? 5)) continue;
        if (isUnavailable(err) || batch.length === 1) {
          for (const w of batch) w.reject(err);
          return;
        }
        // Find the culprit: each item alone (still in order, one lane).
        for (const w of batch) await this.runBatch([w]);
        return;
      }
    }
  }
}

/** A small, fast string hash (FNV-1a) for choosing a lane. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
