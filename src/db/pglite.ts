import { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable } from './types.js';
import { quoteIdent } from './types.js';

/**
 * Embedded PostgreSQL (WASM) in this process. One connection: statements are serialized by PGlite.
 * `dataDir` undefined means in memory (tests).
 */
export async function openPglite(opts: { dataDir?: string; schema: string }): Promise<Db> {
  const pg = await PGlite.create(opts.dataDir);
  const schema = quoteIdent(opts.schema);
  await pg.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path = ${schema}, public;`);
  const wrap = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    exec: async (sql) => {
      await q.exec(sql);
    },
    query: async (text, params) => {
      const res = await q.query(text, params as unknown[]);
      return { rows: res.rows as never[] };
    },
  });
  const base = wrap(pg);
  let closed = false;
  return {
    kind: 'pglite',
    schema: opts.schema,
    query: (text, params) => base.query(text, params),
    exec: (sql) => base.exec(sql),
    transaction: (fn) => pg.transaction((tx) => fn(wrap(tx))),
    async listen(channel, onPayload) {
      const unsub = await pg.listen(channel, onPayload);
      return async () => {
        if (!closed) await unsub();
      };
    },
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    async close() {
      if (closed) return;
      closed = true;
      await pg.close();
    },
  };
}
