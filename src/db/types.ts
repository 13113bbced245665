/** The one narrow seam between ck and its database: PostgreSQL (pool) or PGlite (in-process). */
export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** The schema ck's objects live in. */
  readonly schema: string;
  /** Runs fn in one transaction; rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** LISTEN on a channel; `onReconnect` runs after the subscription was lost and re-established. */
  listen(channel: string, onPayload: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** Connections in use and total, for metrics. */
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

/** SQLSTATE codes ck branches on. */
export const SQLSTATE = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  invalidParameter: '22023',
  invalidDatetime: '22007',
  raiseException: 'P0001',
  lockNotAvailable: '55P03',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  undefinedTable: '42P01',
} as const;

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Errors that mean "the database is not reachable right now" (class 08, 57P0x, node socket errors). */
export function isUnavailable(err: unknown): boolean {
  const code = sqlState(err);
  if (code === undefined) return false;
  return (
    code === DB_UNAVAILABLE ||
    code.startsWith('08') ||
    code === '57P01' || code === '57P02' || code === '57P03' || code === '53300' ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)
  );
}

/** Code the seam gives driver errors that carry no SQLSTATE: the connection itself failed. */
export const DB_UNAVAILABLE = 'CK_DB_UNAVAILABLE';

export function unavailable(cause: unknown): Error {
  return Object.assign(new Error('database unavailable', { cause }), { code: DB_UNAVAILABLE });
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
