import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from './db/types.js';
import type { Coalescer } from './liveness/coalescer.js';
import { RequestMetrics } from './request-metrics.js';

/** Seconds; from 1 ms (a flush of a few users) to 30 s (a request timeout, a stuck job). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// Process metrics (CPU, memory, event-loop lag, GC) describe the process, not an app: collected once per
// process however many apps it builds (tests build dozens), and appended to every app's scrape.
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The Prometheus metrics of one app instance, in a registry of its own (docs/metrics.md lists them all).
 * Subsystems get typed handles here; values that already live elsewhere (buffered heartbeats, pool
 * connections) are read at scrape time.
 *
 * @example
 *   ck.metrics.sseClients.inc();  // a stream opened; .dec() when it ends
 *   ck.metrics.onScrape(async () => ck.metrics.webhookBacklog.set(await countPending(db)));
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly scrapeHooks: Array<() => unknown> = [];

  private readonly http = new RequestMetrics(this.registry, DURATION_BUCKETS);
  private readonly heartbeatsCoalesced = new Counter({
    name: 'ck_heartbeats_coalesced_total', help: 'Heartbeats acknowledged from memory and buffered for the next flush',
    registers: [this.registry],
  });
  private readonly heartbeatsFlushed = new Counter({
    name: 'ck_heartbeats_flushed_total', help: 'Buffered heartbeats written by flushes (one row per user per flush)',
    registers: [this.registry],
  });
  private readonly flushDuration = new Histogram({
    name: 'ck_heartbeat_flush_duration_seconds', help: 'Duration of successful heartbeat flushes',
    buckets: DURATION_BUCKETS, registers: [this.registry],
  });
  private readonly heartbeatsRefreshed = new Counter({
    name: 'ck_heartbeat_refreshed_users_total',
    help: 'Users re-read in the background after a flush, so their heartbeats stay answered from memory',
    registers: [this.registry],
  });
  private readonly held = new Gauge({
    name: 'ck_heartbeat_held', help: 'Users and sessions this instance holds in memory for the heartbeat fast path',
    labelNames: ['kind'] as const, registers: [this.registry],
  });
  private readonly heartbeatsPending = new Gauge({
    name: 'ck_heartbeats_pending', help: 'Users with a buffered heartbeat not yet flushed', registers: [this.registry],
  });
  private readonly jobDuration = new Histogram({
    name: 'ck_job_duration_seconds', help: 'Duration of scheduled job runs on this instance, by job',
    labelNames: ['job'] as const, buckets: DURATION_BUCKETS, registers: [this.registry],
  });
  private readonly jobItems = new Counter({
    name: 'ck_job_items_total',
    help: 'What job runs on this instance processed, by job and item (sweep: users_settled; retention: checkpoints_deleted, session_history_deleted, job_runs_deleted)',
    labelNames: ['job', 'item'] as const, registers: [this.registry],
  });
  private readonly pool = new Gauge({
    name: 'ck_db_pool_connections', help: 'Database pool connections: total open, idle, and callers waiting for one',
    labelNames: ['state'] as const, registers: [this.registry],
  });

  /** How far the stored per-day summaries lag behind now (aggregationLagSeconds), read at every scrape. */
  readonly aggregationLag = new Gauge({
    name: 'ck_aggregation_lag_seconds', help: 'How far the per-day summaries lag behind now, in seconds',
    registers: [this.registry],
  });
  /** Open Server-Sent Events streams: `inc()` when one opens, `dec()` when it ends. */
  readonly sseClients = new Gauge({
    name: 'ck_sse_clients', help: 'Open Server-Sent Events streams on this instance', registers: [this.registry],
  });
  /** Webhook deliveries waiting to be sent, across instances (countPending), read at every scrape. */
  readonly webhookBacklog = new Gauge({
    name: 'ck_webhook_backlog', help: 'Webhook deliveries waiting to be sent', registers: [this.registry],
  });

  private readonly batchSize = new Histogram({
    name: 'ck_group_commit_batch_size', help: 'Rows per group-commit batch (one statement, one commit), by writer',
    labelNames: ['writer'] as const, buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10_000], registers: [this.registry],
  });
  private readonly batchDuration = new Histogram({
    name: 'ck_group_commit_duration_seconds', help: 'Duration of group-commit batches, commit included, by writer',
    labelNames: ['writer'] as const, buckets: DURATION_BUCKETS, registers: [this.registry],
  });

  /** A group-commit batch ran (Batcher's onBatch): `checkpoints`, `heartbeats` (writes) or `lookups` (cold reads). */
  observeBatch(writer: 'checkpoints' | 'heartbeats' | 'lookups', size: number, ms: number): void {
    this.batchSize.observe({ writer }, size);
    this.batchDuration.observe({ writer }, ms / 1000);
  }

  private readonly laneServed = new Counter({
    name: 'ck_heartbeat_lane_total', help: 'POST /heartbeat requests answered by the heartbeat lane, ahead of the router',
    registers: [this.registry],
  });

  /** Moves `counter` to a running total kept elsewhere (`read`) at every scrape. */
  private follow(counter: Counter, read: () => number): void {
    let seen = 0;
    this.onScrape(() => {
      const now = read();
      counter.inc(now - seen);
      seen = now;
    });
  }

  /** Reads the heartbeat lane's count at every scrape. */
  watchLane(lane: { served: number }): void {
    this.follow(this.laneServed, () => lane.served);
  }

  /** Reads the coalescer's counters and the pool's state at every scrape. */
  watch(db: Db, coalescer: Coalescer): void {
    this.follow(this.heartbeatsCoalesced, () => coalescer.coalesced);
    this.follow(this.heartbeatsRefreshed, () => coalescer.refreshed);
    this.onScrape(() => {
      this.heartbeatsPending.set(coalescer.pendingCount);
      const held = coalescer.heldCounts;
      this.held.set({ kind: 'users' }, held.users);
      this.held.set({ kind: 'sessions' }, held.sessions);
      const p = db.poolStats();
      this.pool.set({ state: 'total' }, p.total);
      this.pool.set({ state: 'idle' }, p.idle);
      this.pool.set({ state: 'waiting' }, p.waiting);
    });
  }

  /**
   * Runs `fn` before every scrape, to set gauges whose value lives elsewhere. A hook that throws is
   * skipped for that scrape (its gauges keep their last value): a scrape never fails because of one.
   */
  onScrape(fn: () => unknown): void {
    this.scrapeHooks.push(fn);
  }

  /** The coalescer's `onFlush`: `users` rows written in `ms`. */
  observeFlush = (users: number, ms: number): void => {
    this.heartbeatsFlushed.inc(users);
    this.flushDuration.observe(ms / 1000);
  };

  /**
   * One run of a scheduled job (the `onRun` of `every()`): its duration and what it processed.
   * @example metrics.observeJob('sweep', 12.5, { users_settled: 40 })
   */
  observeJob(job: string, ms: number, items: Record<string, number> = {}): void {
    this.jobDuration.observe({ job }, ms / 1000);
    for (const [item, n] of Object.entries(items)) this.jobItems.inc({ job, item }, n);
  }

  /** Called once per response. Labels use the route pattern (`/status/:user_id`), never the raw URL. */
  observeRequest(method: string, route: string, status: number, ms: number): void {
    this.http.observe(method, route, status, ms / 1000);
  }

  readonly contentType = this.registry.contentType;

  /** The Prometheus text exposition of this app and the process. */
  async scrape(onHookError: (err: unknown) => void): Promise<string> {
    for (const hook of this.scrapeHooks) {
      try {
        await hook();
      } catch (err) {
        onHookError(err);
      }
    }
    return (await this.registry.metrics()) + (await processMetrics().metrics());
  }
}
