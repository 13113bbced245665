import { Batcher } from '../db/batcher.js';
import type { Db } from '../db/types.js';
import type { Clock, Timeouts } from '../time.js';
import { type CheckpointInput, type CheckpointResult, recordCheckpoints } from './record.js';

export interface CheckpointWriterOptions {
  db: Db;
  clock: Clock;
  timeouts: Timeouts;
  /** Transactions in flight at once; a user's checkpoints always share one, in arrival order. */
  lanes: number;
  /** After a batch committed: the users whose state it changed. */
  onCommit?: (changedUsers: string[]) => void;
  onBatch?: (size: number, ms: number) => void;
}

/**
 * Group commit for client checkpoints: requests that arrive while a transaction is committing are
 * written together in the next, one set-based statement; each request is answered once its batch
 * committed, so an acknowledged checkpoint is durable, as when they were written one by one.
 */
export class CheckpointWriter {
  private readonly batcher: Batcher<CheckpointInput, CheckpointResult>;

  constructor(private readonly o: CheckpointWriterOptions) {
    this.batcher = new Batcher(async (inputs) => {
      const results = await recordCheckpoints(o.db, inputs, o.clock.now(), o.timeouts);
      const changed = results.flatMap((r) => (r.status === 'stored' ? [r.row.user_id] : []));
      if (changed.length) this.o.onCommit?.(changed);
      return results;
    }, { maxBatch: 1000, lanes: o.lanes, keyOf: (i) => i.userId, onBatch: o.onBatch });
  }

  record(input: CheckpointInput): Promise<CheckpointResult> {
    return this.batcher.submit(input);
  }
}
