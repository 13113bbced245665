import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import type { Queryable } from '../src/db/types.js';
import { deleteOldCheckpoints, runRetention } from '../src/retention.js';
import { sweepOffline } from '../src/liveness/heartbeats.js';
import { aggregateSummaries } from '../src/summaries/sql.js';
import { BACKENDS, ManualClock, openTestDb, startServer, type TestServer, timeoutsOf } from './helpers.js';

const DAY = 86_400_000;

interface Row {
  id: string;
  user_id: string;
  ts: number;
}

const allRows = async (db: Queryable): Promise<Row[]> =>
  (await db.query<Row>('SELECT id::text, user_id, ck_ms(ts) AS ts FROM checkpoints ORDER BY user_id, ts, id')).rows;

/** What retention must leave: per user, everything from `before` on plus the newest row before it. */
function expectedAfter(rows: Row[], before: number): string[] {
  const keep: string[] = [];
  const users = [...new Set(rows.map((r) => r.user_id))];
  for (const u of users) {
    const mine = rows.filter((r) => r.user_id === u);
    const old = mine.filter((r) => r.ts < before);
    if (old.length) keep.push(old[old.length - 1]!.id);
    keep.push(...mine.filter((r) => r.ts >= before).map((r) => r.id));
  }
  return keep.sort();
}

const ids = (rows: Row[]) => rows.map((r) => r.id).sort();

describe.each(BACKENDS)('retention through the API (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  const t0 = clock.now();
  const at = (day: number) => t0 + day * DAY;
  const date = (day: number) => new Date(at(day)).toISOString().slice(0, 10);
  const users = ['gone', 'mixed', 'young', 'hb'];

  beforeAll(async () => {
    s = await startServer(backend, { clock, env: { CK_RETENTION_DAYS: '30' } });
    // [day, user, state]: written when the clock reaches that day (heartbeats have state null).
    const script: [number, string, string | null][] = [
      [0, 'gone', 'Busy'], [0, 'mixed', 'Online'], [0, 'hb', null], [1, 'gone', 'Away'], [2, 'gone', 'Online'],
      [20, 'mixed', 'Busy'], [50, 'hb', null], [75, 'mixed', 'Away'], [75, 'young', 'Busy'], [80, 'hb', null],
      [90, 'mixed', 'Online'], [95, 'young', 'Away'],
    ];
    for (const [day, user, state] of script) {
      clock.t = at(day) + 3600_000;
      const r = state ? await s.req('POST', '/checkpoints', { user_id: user, state }) : await s.req('POST', '/heartbeat', { user_id: user });
      expect(r.status).toBeLessThan(300);
    }
    clock.t = at(100);
  });
  afterAll(() => s.close());

  const views = async () => Promise.all(users.map(async (u) => ({
    status: (await s.req('GET', `/status/${u}`)).body,
    window: (await s.req('GET', `/checkpoints?user_id=${u}&from=${new Date(at(70)).toISOString()}&limit=1000`)).body,
    stored: (await s.req('GET', `/summaries?user_id=${u}&from=${date(0)}&to=${date(99)}`)).body,
    // Another zone is computed live from the checkpoints: exact inside the window only.
    live: (await s.req('GET', `/summaries?user_id=${u}&from=${date(71)}&to=${date(99)}&tz=Asia/Tokyo`)).body,
  })));

  it('deletes what is older than the window, keeping each user\'s state at its start, summaries and all that is younger', async () => {
    await aggregateSummaries(s.db, clock.now(), timeoutsOf(s.config.heartbeatTimeoutSec));
    const before = await allRows(s.db);
    const progress = (await s.db.query('SELECT * FROM summary_progress ORDER BY user_id')).rows;
    const seen = await views();

    const result = await s.db.transaction((tx) => runRetention(tx, clock.now(), 30));
    const after = await allRows(s.db);
    expect(ids(after)).toEqual(expectedAfter(before, at(70)));
    expect(result.checkpoints_deleted).toBe(before.length - after.length);
    expect(result.checkpoints_deleted).toBeGreaterThanOrEqual(8);
    // 'gone' keeps only its latest checkpoint; 'young' keeps everything.
    expect(after.filter((r) => r.user_id === 'gone')).toHaveLength(1);
    expect(ids(after.filter((r) => r.user_id === 'young'))).toEqual(ids(before.filter((r) => r.user_id === 'young')));

    // Current state, the timeline inside the window, stored per-day totals and live totals inside the window.
    expect(await views()).toEqual(seen);
    expect((await s.db.query('SELECT * FROM summary_progress ORDER BY user_id')).rows).toEqual(progress);
    for (const v of seen) expect(v.window.checkpoints.length).toBeGreaterThan(0);
    expect(seen[1]!.stored.totals.Busy).toBeGreaterThan(0); // 'mixed' was Busy from day 20 to 75
    expect(seen[1]!.live.total_seconds).toBeGreaterThan(0);
  });

  it('a second run finds nothing to do', async () => {
    const result = await s.db.transaction((tx) => runRetention(tx, clock.now(), 30));
    expect(result).toEqual({ checkpoints_deleted: 0, session_history_deleted: 0, job_runs_deleted: 0 });
  });
});

describe.each(BACKENDS)('retention batches (%s)', (backend) => {
  let db: Awaited<ReturnType<typeof openTestDb>>;
  const now = Date.parse('2026-11-20T12:00:00.000Z');
  const cutoff = now - 30 * DAY;
  beforeAll(async () => {
    db = await openTestDb(backend);
    await migrate(db);
  });
  afterAll(async () => {
    await db.close();
    await db.dropSchema();
  });

  /** Starts over: no checkpoints, and the pass back at the beginning of time. */
  const reset = () => db.exec(`TRUNCATE checkpoints; UPDATE retention_progress SET done_ts = '-infinity', done_id = 0`);

  /** `users` users with one checkpoint per day for `days` days up to now, alternating states. */
  const seed = (users: number, days: number) => db.query(
    `INSERT INTO checkpoints (user_id, state, ts, source)
     SELECT 'u' || u, CASE WHEN d % 2 = 0 THEN 'Online' ELSE 'Busy' END, $1::timestamptz - d * interval '1 day', 'client'
       FROM generate_series(1, $2::int) u, generate_series(0, $3::int - 1) d ORDER BY d DESC, u`,
    [new Date(now).toISOString(), users, days],
  );

  it('deletes at most the batch size per statement and converges on the same result', async () => {
    await seed(7, 60);
    const before = await allRows(db);
    let total = 0;
    for (let i = 0; i < 100; i++) {
      const { deleted, passed } = await deleteOldCheckpoints(db, cutoff, 25);
      expect(deleted).toBeLessThanOrEqual(25);
      total += deleted;
      if (passed < 25) break;
    }
    const after = await allRows(db);
    expect(ids(after)).toEqual(expectedAfter(before, cutoff));
    expect(total).toBe(before.length - after.length);
    expect(await deleteOldCheckpoints(db, cutoff, 25)).toEqual({ deleted: 0, passed: 0 });
  });

  it('a run is bounded by batch x statements; later runs and a moving cutoff continue where it stopped', async () => {
    await reset();
    await seed(5, 80);
    const before = await allRows(db);
    const first = await runRetention(db, now, 30, { batch: 10, statements: 3 });
    expect(first.checkpoints_deleted).toBeGreaterThan(0);
    expect(first.checkpoints_deleted).toBeLessThanOrEqual(30);
    for (let i = 0; i < 100 && (await runRetention(db, now, 30, { batch: 10, statements: 3 })).checkpoints_deleted > 0; i++);
    expect(ids(await allRows(db))).toEqual(expectedAfter(before, cutoff));
    // Ten days later ten more days fall out of the window.
    for (let i = 0; i < 100 && (await runRetention(db, now + 10 * DAY, 30, { batch: 10 })).checkpoints_deleted > 0; i++);
    expect(ids(await allRows(db))).toEqual(expectedAfter(before, cutoff + 10 * DAY));
  });

  it('keeps going past batches that delete nothing (more users than the batch size)', async () => {
    await reset();
    await seed(40, 45);
    const before = await allRows(db);
    // The first batches pass only users' first checkpoints: nothing to delete yet, but not caught up.
    expect(await deleteOldCheckpoints(db, cutoff, 10)).toEqual({ deleted: 0, passed: 10 });
    const run = await runRetention(db, now, 30, { batch: 10, statements: 10 });
    expect(run.checkpoints_deleted).toBeGreaterThan(0);
    for (let i = 0; i < 100 && (await runRetention(db, now, 30, { batch: 10, statements: 10 })).checkpoints_deleted > 0; i++);
    expect(ids(await allRows(db))).toEqual(expectedAfter(before, cutoff));
  });

  it('concurrent runs neither fail nor delete twice', async () => {
    await reset();
    await seed(6, 50);
    const before = await allRows(db);
    const run = () => db.transaction((tx) => runRetention(tx, now, 30, { batch: 20, statements: 100 }));
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.checkpoints_deleted + b.checkpoints_deleted).toBe(before.length - expectedAfter(before, cutoff).length);
    expect(ids(await allRows(db))).toEqual(expectedAfter(before, cutoff));
  });

  it('turns summary invalidation off only for its own deletes', async () => {
    await reset();
    await seed(2, 40);
    await db.query(`UPDATE summary_progress SET valid_until = 'infinity', due_at = 'infinity'`);
    const setting = await db.transaction(async (tx) => {
      await deleteOldCheckpoints(tx, cutoff, 1000);
      const { rows } = await tx.query<{ v: string | null }>(`SELECT current_setting('ck.retention', true) AS v`);
      // A later delete in the same transaction invalidates the summaries as usual.
      await tx.query(`DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints)`);
      return rows[0]!.v;
    });
    expect(setting).not.toBe('on');
    const { rows } = await db.query<{ user_id: string }>(`SELECT user_id FROM summary_progress WHERE valid_until <> 'infinity'`);
    expect(rows.map((r) => r.user_id)).toEqual(['u2']);
  });

  it('prunes job_runs older than a week', async () => {
    await db.query(
      `INSERT INTO job_runs (job, instance, started_at) SELECT 'probe', 'test', $1::timestamptz - d * interval '1 day'
         FROM generate_series(0, 9) d`,
      [new Date(now).toISOString()],
    );
    const result = await runRetention(db, now, 30);
    expect(result.job_runs_deleted).toBe(2);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM job_runs WHERE job = 'probe'`);
    expect(rows[0]!.n).toBe(8);
  });
});

describe.each(BACKENDS)('retention of session histories (%s)', (backend) => {
  // Two deployments fed the same script; only `kept` runs retention. Inside the window, and for any
  // recompute a back-fill triggers there, they must stay indistinguishable.
  const env = { CK_RETENTION_DAYS: '30', CK_HEARTBEAT_TIMEOUT: '86400', CK_IDLE_TIMEOUT: '0' };
  const clock = new ManualClock();
  const t0 = clock.now();
  const at = (day: number) => t0 + day * DAY;
  let kept: TestServer;
  let full: TestServer;
  beforeAll(async () => {
    [kept, full] = await Promise.all([startServer(backend, { clock, env }), startServer(backend, { clock, env })]);
  });
  afterAll(async () => {
    await kept.close();
    await full.close();
  });
  const both = async (method: string, path: string, body?: unknown) => {
    for (const s of [kept, full]) expect((await s.req(method, path, body)).status, `${method} ${path}`).toBeLessThan(300);
  };
  const rows = async (s: TestServer) => ({
    sessions: (await s.db.query<{ session_id: string; state: string; ts: number }>(
      `SELECT session_id, state, ck_ms(ts) AS ts FROM session_checkpoints ORDER BY ts, id`)).rows,
    manual: (await s.db.query<{ state: string | null; set_at: number }>(
      `SELECT state, ck_ms(set_at) AS set_at FROM manual_presence ORDER BY set_at, id`)).rows,
  });
  const views = async (s: TestServer) => ({
    status: (await s.req('GET', '/status/sam')).body,
    window: (await s.req('GET', `/checkpoints?user_id=sam&from=${new Date(at(70)).toISOString()}&limit=1000`)).body,
    sessions: (await s.req('GET', '/users/sam/sessions')).body,
  });

  it('keeps each session\'s and the manual presence\'s row in force at the cutoff, drops ended ones, and changes nothing inside the window', async () => {
    // [day, method, path, body]; 'phone' stays alive (a heartbeat every half day), the others end.
    const script: [number, string, string, unknown?][] = [
      [0, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'phone', state: 'Busy' }],
      [0, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'laptop', state: 'Online' }],
      [0.5, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'laptop', state: 'Offline' }],
      [1, 'PUT', '/users/sam/presence', { state: 'DoNotDisturb', until: at(2) }],
      [3, 'PUT', '/users/sam/presence', { state: 'Away' }],
      [4, 'DELETE', '/users/sam/presence'],
      [5, 'PUT', '/users/sam/presence', { state: 'Busy', until: at(85) }],
      [10, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'phone', state: 'Away' }],
      [20, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'tab', state: 'Online' }], // expires on day 21
      [80, 'POST', '/checkpoints', { user_id: 'sam', session_id: 'phone', state: 'Online' }],
    ];
    let next = 0;
    for (let half = 0; half <= 200; half++) {
      const day = half / 2;
      clock.t = at(day) + 60_000;
      while (next < script.length && script[next]![0] <= day) {
        const [, method, path, body] = script[next++]!;
        await both(method, path, body);
      }
      await both('POST', '/heartbeat', { user_id: 'sam', session_id: 'phone' });
    }
    clock.t = at(100) + 120_000;
    for (const s of [kept, full]) await sweepOffline(s.db, timeoutsOf(86_400, 0), clock.now());
    expect(await rows(kept)).toEqual(await rows(full));
    const seen = await views(full);
    expect(await views(kept)).toEqual(seen);

    const result = await kept.db.transaction((tx) => runRetention(tx, clock.now(), 30));
    const left = await rows(kept);
    const before = at(70);
    // Before the cutoff: phone's Away (in force at the cutoff) and the manual Busy until day 85; no row of
    // the ended laptop and tab sessions, nor the expired and cleared manual presences.
    expect(left.sessions.filter((r) => r.ts < before).map((r) => [r.session_id, r.state])).toEqual([['phone', 'Away']]);
    expect(left.manual.filter((r) => r.set_at < before).map((r) => r.state)).toEqual(['Busy']);
    const all = await rows(full);
    expect(result.session_history_deleted).toBe(all.sessions.length + all.manual.length - left.sessions.length - left.manual.length);
    expect(left.sessions.filter((r) => r.ts >= before)).toEqual(all.sessions.filter((r) => r.ts >= before));
    expect(await views(kept)).toEqual(seen);

    // A back-fill inside the window recomputes from there: the same on both.
    clock.t = at(100) + 180_000;
    await both('POST', '/checkpoints', { user_id: 'sam', session_id: 'phone', state: 'Busy', timestamp: at(95) });
    await both('POST', '/checkpoints', { user_id: 'sam', session_id: 'tab', state: 'Away', timestamp: at(96) });
    const after = await views(full);
    expect(after.window.checkpoints.length).toBeGreaterThan(seen.window.checkpoints.length);
    expect(await views(kept)).toEqual(after);
    expect((await kept.db.transaction((tx) => runRetention(tx, clock.now(), 30))).session_history_deleted).toBe(0);
  });
});
