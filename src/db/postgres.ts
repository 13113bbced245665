import pg from 'pg';
import type { Db, Queryable } from './types.js';
import { quoteIdent, sqlState, unavailable } from './types.js';

// A driver error without a SQLSTATE (5 chars) is a connection failure: pool timeout, socket closed.
const wrapError = (err: unknown): never => {
  const code = sqlState(err);
  throw code && /^[0-9A-Z]{5}$/.test(code) ? err : unavailable(err);
};

// timestamptz and bigint come back as strings; ck formats times itself.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, (v) => v);
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

export interface PostgresOptions {
  url: string;
  schema: string;
  /**
   * Put the schema on the search_path with the `options` startup parameter. Default: unless it is
   * `public`, which is on it anyway. Transaction poolers (PgBouncer) refuse the parameter: the role's or
   * database's own search_path must name the schema then (openDb checks it).
   */
  searchPath?: boolean;
  poolSize: number;
  /** Fail fast when the server is down instead of queueing forever. */
  connectTimeoutMs?: number;
}

export function openPostgres(opts: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    ...((opts.searchPath ?? opts.schema !== 'public') ? { options: `-c search_path=${quoteIdent(opts.schema)},public` } : {}),
    application_name: 'ck',
  });
  // An idle client dying (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});

  const listeners = new Set<ListenSession>();

  return {
    kind: 'postgres',
    schema: opts.schema,
    query: (text, params) => pool.query(text, params as unknown[]).catch(wrapError) as never,
    exec: async (sql) => {
      await pool.query(sql).catch(wrapError);
    },
    async transaction(fn) {
      const client = await pool.connect().catch(wrapError);
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: (text, params) => client.query(text, params as unknown[]).catch(wrapError) as never,
          exec: async (sql) => {
            await client.query(sql).catch(wrapError);
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload, onReconnect) {
      const session = new ListenSession(opts, channel, onPayload, onReconnect);
      listeners.add(session);
      await session.start();
      return async () => {
        listeners.delete(session);
        await session.stop();
      };
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      await Promise.all([...listeners].map((l) => l.stop()));
      await pool.end();
    },
  };
}

/** A dedicated LISTEN connection that reconnects with backoff when the server goes away. */
class ListenSession {
  private client?: pg.Client;
  private stopped = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly opts: PostgresOptions,
    private readonly channel: string,
    private readonly onPayload: (payload: string) => void,
    private readonly onReconnect?: () => void,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.url, connectionTimeoutMillis: 5000 });
    client.on('notification', (msg) => this.onPayload(msg.payload ?? ''));
    client.on('error', () => this.retry());
    client.on('end', () => this.retry());
    await client.connect();
    await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    this.client = client;
  }

  private retry(delay = 250): void {
    if (this.stopped || this.timer) return;
    this.client = undefined;
    this.timer = setTimeout(async () => {
      this.timer = undefined;
      try {
        await this.connect();
        this.onReconnect?.();
      } catch {
        this.retry(Math.min(delay * 2, 5000));
      }
    }, delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client?.end().catch(() => {});
  }
}
