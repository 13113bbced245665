import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/types.js';
import { PG_URL, startServer, type TestServer } from './helpers.js';
import { waitFor } from './wait.js';

/** An event-stream reader that keeps every event and the ids in the order they came. */
async function reader(s: TestServer, lastId?: string) {
  const ctrl = new AbortController();
  const res = await fetch(`${s.url}/events`, {
    headers: { authorization: `Bearer ${s.adminKey}`, ...(lastId ? { 'last-event-id': lastId } : {}) }, signal: ctrl.signal,
  });
  const got: { id: string; user_id: string; state: string }[] = [];
  let buf = '';
  void (async () => {
    try {
      for await (const chunk of res.body!) {
        buf += Buffer.from(chunk).toString('utf8');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.includes('event: state') && data) got.push(JSON.parse(data.slice(6)));
        }
      }
    } catch {
      // closed
    }
  })();
  return { got, close: () => ctrl.abort() };
}

/** A connection of its own on the server's schema: a transaction the test holds open. */
async function holder(s: TestServer) {
  const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${quoteIdent(s.db.schema)},public` });
  await client.connect();
  return client;
}

describe.skipIf(!PG_URL)('event order when transactions commit out of id order (postgres)', () => {
  it('a stream never skips an event whose transaction committed after a later one', async () => {
    const s = await startServer('postgres');
    const a = await holder(s);
    try {
      const live = await reader(s);
      const first = await reader(s);
      await waitFor('two open streams', () => s.app.ck.streams.size === 2);
      const e0 = (await s.req('POST', '/checkpoints', { user_id: 'u0', state: 'Busy' })).body.id as string;
      await waitFor('the first reader to get e0', () => first.got.some((e) => e.id === e0));
      // A writes checkpoint 1 and stays open; B writes checkpoint 2 and commits.
      await a.query('BEGIN');
      const { rows } = await a.query(`SELECT id::text FROM ck_record_checkpoints('{u1}', '{default}', '{Away}', ARRAY[now()], '{NULL}', '{NULL}', '{t}', now(), '60 seconds', '300 seconds') WHERE status = 'stored'`);
      const e1 = rows[0].id as string;
      const e2 = (await s.req('POST', '/checkpoints', { user_id: 'u2', state: 'Away' })).body.id as string;
      expect(BigInt(e1)).toBeLessThan(BigInt(e2));
      // B's event waits behind A's open transaction: handing it out now could skip A's later.
      await new Promise((r) => setTimeout(r, 800));
      expect(first.got.map((e) => e.id)).toEqual([e0]);
      first.close();
      await a.query('COMMIT');
      // Reconnecting after e0 gets A's event and B's, once each, in the order they became final.
      const again = await reader(s, e0);
      await waitFor('both events after the reconnect', () => again.got.length >= 2);
      await waitFor('both events on the live stream', () => live.got.length >= 3);
      await new Promise((r) => setTimeout(r, 300));
      expect(again.got.map((e) => e.id)).toEqual([e1, e2]);
      expect(live.got.map((e) => e.id)).toEqual([e0, e1, e2]);
      again.close();
      live.close();
    } finally {
      await a.end();
      await s.close();
    }
  }, 60_000);

  it("a writer that got its transaction id before waiting for a user's lock retries rather than order an event before one it follows", async () => {
    const s = await startServer('postgres');
    const [x, t1] = [await holder(s), await holder(s)];
    try {
      await s.req('POST', '/checkpoints', { user_id: 'w', state: 'Online' });
      const write = (c: pg.Client, state: string) =>
        c.query(`SELECT status FROM ck_record_checkpoints('{w}', '{default}', ARRAY[$1], ARRAY[now()], '{NULL}', '{NULL}', '{t}', now(), '60 seconds', '300 seconds')`, [state]);
      // X takes its transaction id first (writing something else), T1 then takes w's lock with a later id.
      await x.query('BEGIN');
      await x.query(`SELECT status FROM ck_record_checkpoints('{other}', '{default}', '{Busy}', ARRAY[now()], '{NULL}', '{NULL}', '{t}', now(), '60 seconds', '300 seconds')`);
      await t1.query('BEGIN');
      await write(t1, 'Busy');
      const waiting = write(x, 'Away').then(() => 'committed', (err: { code?: string }) => err.code);
      await new Promise((r) => setTimeout(r, 300));
      await t1.query('COMMIT');
      expect(await waiting).toBe('40001');
      await x.query('ROLLBACK');
      // The group-commit writer retries such a batch with a new transaction: the API never shows the 40001.
      expect((await s.req('POST', '/checkpoints', { user_id: 'w', state: 'Away' })).status).toBe(201);
      const { rows } = await s.db.query<{ state: string }>(`SELECT state FROM events WHERE user_id = 'w' AND type = 'state' ORDER BY xid, id`);
      expect(rows.map((r) => r.state)).toEqual(['Online', 'Busy', 'Away']);
    } finally {
      await x.end();
      await t1.end();
      await s.close();
    }
  }, 60_000);
});

describe.skipIf(!PG_URL)('the event frontier and other databases (postgres)', () => {
  it("a long write in another database on the server does not hold this database's streams back", async () => {
    const s = await startServer('postgres');
    const other = new pg.Client({ connectionString: Object.assign(new URL(PG_URL!), { pathname: '/postgres' }).href });
    await other.connect();
    try {
      const live = await reader(s);
      await waitFor('an open stream', () => s.app.ck.streams.size === 1);
      // A transaction of another database that has written (it holds a transaction id) and stays open.
      await other.query('BEGIN');
      await other.query('SELECT pg_current_xact_id()');
      const id = (await s.req('POST', '/checkpoints', { user_id: 'x1', state: 'Busy' })).body.id as string;
      await waitFor('the event, while the other transaction is open', () => live.got.some((e) => e.id === id), 5000);
      live.close();
    } finally {
      await other.query('ROLLBACK').catch(() => {});
      await other.end();
      await s.close();
    }
  });
});
