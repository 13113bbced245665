import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyString } from '../../src/auth/keys.js';
import { openPostgres } from '../../src/db/postgres.js';
import { canRunPrivateCluster, PrivateCluster } from './cluster.js';
import { expectConsistentTimeline, startLoad, unflushedBeats, userIds } from './load.js';
import { call, startService, stopAll } from './process.js';
import { waitFor } from '../wait.js';

/** A request "hangs" if it takes this long; failing requests must answer well within it. */
const HANG_MS = 10_000;

/**
 * Opens GET /events for a user; resolves once the stream is connected (subscribed) with `events`, which
 * collects state events until `count` arrived (or the deadline).
 */
async function sseEvents(url: string, key: string, user: string, count: number, timeoutMs: number) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  const res = await fetch(`${url}/events?user_id=${user}`, { headers: { authorization: `Bearer ${key}` }, signal: ctrl.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let connected!: () => void;
  const ready = new Promise<void>((r) => (connected = r));
  const done = (async () => {
    const events: { id: string; state: string }[] = [];
    try {
      while (events.length < count) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.includes(': connected')) connected();
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.includes('event: state') && data) events.push(JSON.parse(data.slice(6)));
        }
      }
    } catch {
      // aborted at the deadline
    } finally {
      clearTimeout(timer);
      ctrl.abort();
      connected();
    }
    return events;
  })();
  await ready;
  return { events: done };
}

describe.skipIf(!canRunPrivateCluster)('PostgreSQL restarted under load (private cluster)', () => {
  let cluster: PrivateCluster | undefined;
  afterAll(async () => {
    await stopAll();
    await cluster?.destroy();
  });

  it('fails fast with 503 while the database is down, recovers by itself, and flushes acknowledged heartbeats', async () => {
    cluster = await PrivateCluster.create();
    const key = generateKeyString();
    // Flushes every 500 ms, so several fail during the outage.
    const svc = await startService({
      DATABASE_URL: cluster.url(), CK_DB_SCHEMA: 'ck_fault', CK_API_KEY: key, CK_FLUSH_INTERVAL_MS: '500',
    });
    const users = userIds('pr-', 20);
    const load = startLoad(svc.url, key, users, 8);
    // Quiet users get heartbeats only around the outage, so nothing newer covers a lost buffered one.
    const quiet = userIds('pr-quiet-', 10);
    const quietAcked = new Map<string, number>();
    let quietKey = '';
    const quietRound = async () => {
      const replies = await Promise.all(quiet.map((u) => call(svc.url, quietKey, 'POST', '/heartbeat', { user_id: u })));
      for (const r of replies) if (r.status === 200) quietAcked.set(r.body.user_id, Date.parse(r.body.last_heartbeat));
      return replies.filter((r) => r.status === 200).length;
    };
    let stopping = 0;
    let down = 0;
    let up = 0;
    let ackedWhileDown = 0;
    let ackedLate = 0;
    try {
      await waitFor('heartbeats for every user and 40 checkpoints',
        () => load.beats.size === users.length && load.acked.length >= 40, 60_000);
      // A new key, verified before the outage: heartbeats from memory are acknowledged during it.
      quietKey = (await call(svc.url, key, 'POST', '/keys', { name: 'quiet', scopes: ['ingest'] })).body.key;
      expect(await quietRound()).toBe(quiet.length); // stored
      expect(await quietRound()).toBe(quiet.length); // from memory, buffered
      stopping = Date.now();
      await cluster.stop('fast');
      down = Date.now();
      ackedWhileDown = await quietRound(); // from memory while nothing can be flushed
      // Down for at least 3 s: a few failed flushes and LISTEN reconnect attempts.
      await waitFor('30 failed requests and 3 s of outage', () => Date.now() - down >= 3000 &&
        load.outcomes.filter((o) => o.sent >= down && o.status !== 200 && o.status !== 201).length >= 30, 60_000);
      expect(svc.running()).toBe(true);
      // Past the key cache's 5 s TTL, the key verified before the outage still admits heartbeats that need
      // no database (stale if error).
      await waitFor('6 s of outage', () => Date.now() - down >= 6000, 10_000);
      ackedLate = await quietRound();

      await cluster.start();
      up = Date.now();
      // No restart of ck: its pool reconnects by itself.
      await waitFor('20 checkpoints acknowledged after the restart', () =>
        load.outcomes.filter((o) => o.sent >= up && o.status === 201).length >= 20, 60_000);
    } finally {
      await load.stop();
    }
    expect(svc.running()).toBe(true);

    // Nothing hung, nothing crashed: every request got an answer, and every failure was a quick 503 problem.
    expect(load.outcomes.filter((o) => o.error).map((o) => o.error)).toEqual([]);
    const failures = load.outcomes.filter((o) => o.status !== 200 && o.status !== 201);
    expect(failures.length).toBeGreaterThanOrEqual(30);
    for (const f of failures) {
      expect(f.sent + f.ms).toBeGreaterThanOrEqual(stopping); // in flight when the server stopped, or later
      expect(f.sent).toBeLessThan(up + HANG_MS);
      expect({ status: f.status, type: f.contentType, problem: f.body?.status }).toEqual({
        status: 503, type: expect.stringMatching(/^application\/problem\+json/), problem: 503,
      });
      expect(f.ms).toBeLessThan(HANG_MS);
    }
    expect((await call(svc.url, key, 'GET', '/readyz')).status).toBe(200);

    expect(ackedWhileDown).toBeGreaterThan(0);
    expect(ackedLate).toBe(quiet.length);
    const acknowledged = new Map([...load.beats, ...quietAcked]);
    const db = openPostgres({ url: cluster.url(), schema: 'ck_fault', poolSize: 1 });
    try {
      // Heartbeats acknowledged from memory before and during the outage reach the database after it.
      const flushed = async () => (await unflushedBeats(db, acknowledged)).length === 0;
      await waitFor('acknowledged heartbeats to be flushed', flushed, 30_000)
        .catch(async (err) => {
          throw new Error(`${err}: ${(await unflushedBeats(db, acknowledged)).slice(0, 5).join('; ')}`);
        });
      await expectConsistentTimeline(db, load.acked);
    } finally {
      await db.close();
    }

    // Live events flow again: the LISTEN connection came back (exactly once: no duplicates).
    const { events } = await sseEvents(svc.url, key, 'pr-sse', 2, 30_000);
    const busy = await call(svc.url, key, 'POST', '/checkpoints', { user_id: 'pr-sse', state: 'Busy' });
    const away = await call(svc.url, key, 'POST', '/checkpoints', { user_id: 'pr-sse', state: 'Away' });
    expect([busy.status, away.status]).toEqual([201, 201]);
    expect((await events).map((e) => [e.id, e.state])).toEqual([[busy.body.id, 'Busy'], [away.body.id, 'Away']]);

    expect((await svc.terminate()).code).toBe(0);
  }, 120_000);
});
