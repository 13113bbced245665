import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepOffline } from '../src/liveness/heartbeats.js';
import { ManualClock, openTestDb, startServer, type TestServer, timeoutsOf, WITH_POOLER } from './helpers.js';

async function eventually(fn: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

// PostgreSQL only (PGlite is one process's database); without TEST_DATABASE_URL the file reports a skip
// rather than "no test suite found".
const SERVERS = WITH_POOLER.filter((b) => b !== 'pglite');
describe.skipIf(SERVERS.length === 0)('two instances on one PostgreSQL (needs TEST_DATABASE_URL)', () => {
  it.skipIf(SERVERS.length > 0)('is skipped without a PostgreSQL server', () => {});
});

describe.each(SERVERS)('two instances on one PostgreSQL (%s)', (backend) => {
  let a: TestServer;
  let b: TestServer;
  let base: Awaited<ReturnType<typeof openTestDb>>;
  const clock = new ManualClock(Date.now());
  beforeAll(async () => {
    base = await openTestDb(backend);
    a = await startServer(backend, { clock, db: base });
    b = await startServer(backend, { clock, db: await base.reopen(5) });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await b.db.close();
    await base.close();
    await base.dropSchema();
  });

  it("a state written through B reaches A's heartbeat answers and A's event stream", async () => {
    await a.req('POST', '/heartbeat', { user_id: 'shared' });
    await a.req('POST', '/heartbeat', { user_id: 'shared' }); // now on A's fast path
    await b.req('POST', '/checkpoints', { user_id: 'shared', state: 'Busy' });
    await eventually(async () => {
      expect((await a.req('POST', '/heartbeat', { user_id: 'shared' })).body.state).toBe('Busy');
    });
  });

  it('a sweep by one instance and buffered heartbeats on both keep one consistent timeline', async () => {
    await a.req('POST', '/heartbeat', { user_id: 'both' });
    await b.req('POST', '/heartbeat', { user_id: 'both' });
    clock.advance(2 * 60_000);
    await sweepOffline(b.db, timeoutsOf(60), clock.now());
    await Promise.all([a.req('POST', '/heartbeat', { user_id: 'both' }), b.req('POST', '/heartbeat', { user_id: 'both' })]);
    await Promise.all([a.app.ck.coalescer.flush(), b.app.ck.coalescer.flush()]);
    const tl = (await a.req('GET', '/checkpoints?user_id=both')).body.checkpoints.map((c: any) => c.state);
    expect(tl).toEqual(['Online', 'Offline', 'Online']);
    const { rows } = await a.db.query<{ current_state: string }>(`SELECT current_state FROM user_sessions WHERE user_id = 'both'`);
    expect(rows[0]!.current_state).toBe('Online');
  });

  it('concurrent batches for overlapping users from both instances do not deadlock', async () => {
    const users = Array.from({ length: 300 }, (_, i) => `batch${i}`);
    const reversed = [...users].reverse();
    const results = await Promise.all([
      a.req('POST', '/heartbeats', { user_ids: users }),
      b.req('POST', '/heartbeats', { user_ids: reversed }),
      a.req('POST', '/heartbeats', { user_ids: reversed }),
      b.req('POST', '/heartbeats', { user_ids: users }),
    ]);
    for (const r of results) expect(r.status).toBe(200);
    const { rows } = await a.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM checkpoints WHERE user_id LIKE 'batch%'`);
    expect(rows[0]!.n).toBe(300); // one Online each, never two
  });
});
