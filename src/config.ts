/**
 * All configuration, read once from the environment at the process edge and passed down typed.
 * Nothing else in ck reads `process.env`.
 */
export type SchedulerMode = 'app' | 'pg_cron' | 'off';

export interface Config {
  port: number;
  host: string;
  /** PostgreSQL URL; unset means embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /** A direct (unpooled) connection for migrations and pg_cron installation; unset: DATABASE_URL. */
  directDatabaseUrl?: string;
  /** A streaming replica for heavy reads (summaries, timelines, exports, listings by state). */
  readDatabaseUrl?: string;
  /** A replica further behind than this (ms) is not used; reads go to the primary. */
  readMaxLagMs: number;
  /** Schema holding ck's tables (default `public`). */
  schema: string;
  dataDir: string;
  /** Admin API key to create at start-up if no key exists (else one is generated and printed once). */
  apiKey?: string;
  heartbeatTimeoutSec: number;
  /** Seconds without an active heartbeat or checkpoint before an Online session is Away; 0 turns idle decay off. */
  idleTimeoutSec: number;
  maxBackfillSec: number;
  flushIntervalMs: number;
  sweepIntervalSec: number;
  aggregateIntervalSec: number;
  scheduler: SchedulerMode;
  /** Days of checkpoints to keep; undefined keeps forever. */
  retentionDays?: number;
  tokenSecret?: string;
  /** Requests per key per window; 0 turns rate limiting off. */
  rateLimit: number;
  rateLimitWindowSec: number;
  corsOrigins: string[];
  poolSize: number;
  /** Seconds between SSE keep-alive comments. */
  sseKeepAliveSec: number;
  logLevel: string;
  /** First webhook retry delay; doubles per failed attempt, capped at 1 h. */
  webhookRetryBaseMs: number;
  /** How long one webhook attempt may take, connection to response headers. */
  webhookTimeoutMs: number;
  /** Seconds a rotated-out webhook secret still signs deliveries, beside the new one. */
  webhookRotationOverlapSec: number;
  /** Lets webhooks reach loopback, private, link-local and other internal addresses (on-premises receivers). */
  webhookAllowPrivate: boolean;
  /** The heartbeat lane (src/http/heartbeat-lane.ts); off sends every heartbeat through Fastify. */
  heartbeatLane: boolean;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

export function loadConfig(env: Env = process.env): Config {
  const heartbeatTimeoutSec = int(env, 'CK_HEARTBEAT_TIMEOUT', 60, 1, 86_400);
  const flushIntervalMs = int(env, 'CK_FLUSH_INTERVAL_MS', 1000, 10, 60_000);
  // The coalescer's safety window needs several flushes inside one timeout (docs/ingest.md).
  if (flushIntervalMs * 4 > heartbeatTimeoutSec * 1000) {
    throw new ConfigError('CK_FLUSH_INTERVAL_MS must be at most a quarter of CK_HEARTBEAT_TIMEOUT');
  }
  const maxBackfillSec = int(env, 'CK_MAX_BACKFILL', 7 * 86_400, 0, 366 * 86_400);
  const scheduler = (env.CK_SCHEDULER || 'app') as SchedulerMode;
  if (!['app', 'pg_cron', 'off'].includes(scheduler)) {
    throw new ConfigError(`CK_SCHEDULER must be app, pg_cron or off, got "${env.CK_SCHEDULER}"`);
  }
  const retentionRaw = env.CK_RETENTION_DAYS;
  const retentionDays = retentionRaw ? int(env, 'CK_RETENTION_DAYS', 0, 1, 100_000) : undefined;
  if (retentionDays !== undefined && retentionDays * 86_400 <= maxBackfillSec) {
    throw new ConfigError('CK_RETENTION_DAYS must be longer than CK_MAX_BACKFILL');
  }
  // HS256 is only as strong as its key: anyone holding one token could guess a short secret offline.
  if (env.CK_TOKEN_SECRET && env.CK_TOKEN_SECRET.length < 32) {
    throw new ConfigError('CK_TOKEN_SECRET must be at least 32 characters (e.g. `openssl rand -base64 32`)');
  }
  const lane = env.CK_HEARTBEAT_LANE || 'on';
  if (lane !== 'on' && lane !== 'off') throw new ConfigError(`CK_HEARTBEAT_LANE must be on or off, got "${lane}"`);
  if (env.CK_READ_DATABASE_URL && !env.DATABASE_URL) throw new ConfigError('CK_READ_DATABASE_URL needs DATABASE_URL (a replica of that primary)');
  if (env.CK_DIRECT_DATABASE_URL && !env.DATABASE_URL) throw new ConfigError('CK_DIRECT_DATABASE_URL needs DATABASE_URL (it is the direct way to the same database)');
  const allowPrivate = env.CK_WEBHOOK_ALLOW_PRIVATE || 'false';
  if (allowPrivate !== 'true' && allowPrivate !== 'false') {
    throw new ConfigError(`CK_WEBHOOK_ALLOW_PRIVATE must be true or false, got "${allowPrivate}"`);
  }
  const schema = env.CK_DB_SCHEMA || 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new ConfigError('CK_DB_SCHEMA must be a lower-case SQL identifier');
  }
  return {
    port: int(env, 'PORT', 8080, 0, 65_535),
    host: env.HOST || '127.0.0.1',
    databaseUrl: env.DATABASE_URL || undefined,
    directDatabaseUrl: env.CK_DIRECT_DATABASE_URL || undefined,
    readDatabaseUrl: env.CK_READ_DATABASE_URL || undefined,
    readMaxLagMs: int(env, 'CK_READ_MAX_LAG_MS', 5000, 0, 3_600_000),
    schema,
    dataDir: env.CK_DATA_DIR || './data',
    apiKey: env.CK_API_KEY || undefined,
    heartbeatTimeoutSec,
    idleTimeoutSec: int(env, 'CK_IDLE_TIMEOUT', 300, 0, 86_400),
    maxBackfillSec,
    flushIntervalMs,
    sweepIntervalSec: int(env, 'CK_SWEEP_INTERVAL', 10, 1, 3600),
    aggregateIntervalSec: int(env, 'CK_AGGREGATE_INTERVAL', 60, 1, 86_400),
    scheduler,
    retentionDays,
    tokenSecret: env.CK_TOKEN_SECRET || undefined,
    rateLimit: int(env, 'CK_RATE_LIMIT', 0, 0),
    rateLimitWindowSec: int(env, 'CK_RATE_LIMIT_WINDOW', 60, 1, 86_400),
    corsOrigins: (env.CK_CORS_ORIGINS || '').split(',').map((s) => s.trim()).filter(Boolean),
    poolSize: int(env, 'CK_POOL_SIZE', 10, 1, 1000),
    sseKeepAliveSec: int(env, 'CK_SSE_KEEPALIVE', 15, 1, 3600),
    logLevel: env.LOG_LEVEL || 'info',
    webhookRetryBaseMs: int(env, 'CK_WEBHOOK_RETRY_BASE_MS', 1000, 1, 3_600_000),
    webhookTimeoutMs: int(env, 'CK_WEBHOOK_TIMEOUT_MS', 15_000, 100, 300_000),
    webhookRotationOverlapSec: int(env, 'CK_WEBHOOK_ROTATION_OVERLAP', 86_400, 0, 30 * 86_400),
    webhookAllowPrivate: allowPrivate === 'true',
    heartbeatLane: lane === 'on',
  };
}
