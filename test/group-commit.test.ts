import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CheckpointInput, recordCheckpoints } from '../src/checkpoints/record.js';
import { Batcher } from '../src/db/batcher.js';
import { migrate } from '../src/db/migrate.js';
import { type Backend, WITH_POOLER, openTestDb, timeoutsOf } from './helpers.js';

const T0 = Date.parse('2026-11-20T12:00:00.000Z');
type Db = Awaited<ReturnType<typeof openTestDb>>;

async function freshDb(backend: Backend): Promise<Db> {
  const db = await openTestDb(backend);
  await migrate(db);
  return db;
}

const timeline = async (db: Db) => (await db.query<{ user_id: string; state: string; ts: number; source: string }>(
  `SELECT user_id, state, ck_ms(ts) AS ts, source FROM checkpoints ORDER BY user_id, ts, id`)).rows;

describe.each(WITH_POOLER)('group commit: a batch means what its rows one at a time mean (%s)', (backend) => {
  it('mixed rows: an unknown state fails alone, two changes of one user apply in order, a repeat is unchanged', async () => {
    const db = await freshDb(backend);
    try {
      const results = await recordCheckpoints(db, [
        { userId: 'a', state: 'Busy', ts: T0 },
        { userId: 'b', state: 'Nope', ts: T0 },
        { userId: 'a', state: 'Away', ts: T0 + 1 },
        { userId: 'a', state: 'Away', ts: T0 + 2 },
        { userId: 'c', state: 'Online', ts: T0, content: { k: 1 } },
      ], T0 + 5, timeoutsOf(60));
      expect(results.map((r) => r.status)).toEqual(['stored', 'unknown_state', 'stored', 'unchanged', 'stored']);
      const away = results[2]!;
      expect(away.status === 'stored' && away.row.previous_state).toBe('Busy');
      expect(await timeline(db)).toEqual([
        { user_id: 'a', state: 'Busy', ts: T0, source: 'client' },
        { user_id: 'a', state: 'Away', ts: T0 + 1, source: 'client' },
        { user_id: 'c', state: 'Online', ts: T0, source: 'client' },
      ]);
      const { rows } = await db.query<{ user_id: string; current_state: string }>('SELECT user_id, current_state FROM user_sessions ORDER BY 1');
      expect(rows).toEqual([{ user_id: 'a', current_state: 'Away' }, { user_id: 'c', current_state: 'Online' }]);
      // Every stored row is an event, in the log in order.
      const { rows: events } = await db.query<{ user_id: string; state: string; previous_state: string | null }>(
        "SELECT user_id, state, previous_state FROM events WHERE type = 'state' ORDER BY xid, id");
      expect(events).toEqual([
        { user_id: 'a', state: 'Busy', previous_state: null },
        { user_id: 'c', state: 'Online', previous_state: null },
        { user_id: 'a', state: 'Away', previous_state: 'Busy' },
      ]);
    } finally {
      await db.close();
      await db.dropSchema();
    }
  });

  it('a back-fill inside a batch removes the later row it makes redundant, and the owed Offline comes first', async () => {
    const db = await freshDb(backend);
    try {
      await recordCheckpoints(db, [{ userId: 'u', state: 'Online', ts: T0 }], T0, timeoutsOf(60));
      // Two minutes later, heartbeat long gone: the batch first owes the Offline at T0 + 60 s.
      const later = T0 + 120_000;
      const results = await recordCheckpoints(db, [
        { userId: 'u', state: 'Busy', ts: later },
        { userId: 'u', state: 'Busy', ts: later - 10_000 },
      ], later, timeoutsOf(60));
      expect(results.map((r) => r.status)).toEqual(['stored', 'stored']);
      expect((await timeline(db)).map((c) => [c.state, c.ts - T0, c.source])).toEqual([
        ['Online', 0, 'client'], ['Offline', 60_000, 'timeout'], ['Busy', 110_000, 'client'],
      ]);
    } finally {
      await db.close();
      await db.dropSchema();
    }
  });

  it('any batch leaves the timeline one-at-a-time writes leave (property)', async () => {
    const [batched, single] = [await freshDb(backend), await freshDb(backend)];
    let n = 0;
    try {
      const row = fc.record({
        user: fc.constantFrom('p', 'q', 'r'),
        state: fc.constantFrom('Online', 'Busy', 'Away', 'Nope'),
        back: fc.integer({ min: 0, max: 600 }),
      });
      await fc.assert(fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 12 }), async (rows) => {
        const run = `run${n++}-`;
        const now = T0 + n * 3_600_000;
        const inputs: CheckpointInput[] = rows.map((r) => ({ userId: run + r.user, state: r.state, ts: now - r.back * 1000 }));
        const together = await recordCheckpoints(batched, inputs, now, timeoutsOf(60));
        const alone = [];
        for (const i of inputs) alone.push(...(await recordCheckpoints(single, [i], now, timeoutsOf(60))));
        expect(together.map((r) => r.status)).toEqual(alone.map((r) => r.status));
        const of = async (db: Db) => (await timeline(db)).filter((c) => c.user_id.startsWith(run));
        expect(await of(batched)).toEqual(await of(single));
      }), { numRuns: backend === 'pglite' ? 60 : 30 });
    } finally {
      for (const db of [batched, single]) {
        await db.close();
        await db.dropSchema();
      }
    }
  }, 120_000);
});

describe('the batcher', () => {
  it('runs what arrives during a batch as the next batch, keeps each key in order, and fails a bad item alone', async () => {
    const batches: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new Batcher<string, string>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      if (items.includes('bad')) throw new Error('bad row');
      return items.map((i) => i.toUpperCase());
    }, { maxBatch: 100, lanes: 1 });
    const first = b.submit('a');
    const rest = ['b', 'bad', 'c'].map((i) => b.submit(i).catch((e: Error) => e.message));
    release();
    expect(await first).toBe('A');
    expect(await Promise.all(rest)).toEqual(['B', 'bad row', 'C']);
    // [a], then [b, bad, c] together, which failed, then each of them alone.
    expect(batches).toEqual([['a'], ['b', 'bad', 'c'], ['b'], ['bad'], ['c']]);
  });

  it('retries a batch that lost a serialization conflict', async () => {
    let calls = 0;
    const b = new Batcher<number, number>(async (items) => {
      if (++calls === 1) throw Object.assign(new Error('could not serialize'), { code: '40001' });
      return items.map((i) => i * 2);
    }, { maxBatch: 10, lanes: 1 });
    expect(await b.submit(21)).toBe(42);
    expect(calls).toBe(2);
  });
});
