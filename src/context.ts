import type { KeyVerifier } from './auth/keys.js';
import type { TokenRevocations } from './auth/revocations.js';
import type { CheckpointWriter } from './checkpoints/writer.js';
import type { Config } from './config.js';
import type { ReadRouter } from './db/replica.js';
import type { Db } from './db/types.js';
import type { EventHub } from './events/hub.js';
import type { EventStreams } from './events/streams.js';
import type { Coalescer } from './liveness/coalescer.js';
import type { Metrics } from './metrics.js';
import type { StateRegistry } from './states/registry.js';
import type { Clock, Timeouts } from './time.js';
import type { WebhookWorker } from './webhooks/worker.js';

/** What every route and job gets: built once by buildApp, decorated on the app as `app.ck`. */
export interface Context {
  config: Config;
  db: Db;
  clock: Clock;
  /** CK_HEARTBEAT_TIMEOUT and CK_IDLE_TIMEOUT, as every liveness rule takes them. */
  timeouts: Timeouts;
  states: StateRegistry;
  keys: KeyVerifier;
  coalescer: Coalescer;
  /** Client checkpoints, group-committed. */
  checkpoints: CheckpointWriter;
  events: EventHub;
  /** The Server-Sent Events streams open on this instance. */
  streams: EventStreams;
  webhooks: WebhookWorker;
  metrics: Metrics;
  /** HS256 secret for per-user tokens: CK_TOKEN_SECRET, or the one generated and kept in the database. */
  tokenSecret: string;
  /** Revoked per-user tokens, refused by this instance (polled). */
  revocations: TokenRevocations;
  /** Where heavy reads run: the replica (CK_READ_DATABASE_URL) while it is close enough, else the primary. */
  reads: ReadRouter;
}
