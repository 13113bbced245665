import { hostname } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyString } from '../../src/auth/keys.js';
import type { Db } from '../../src/db/types.js';
import { PG_URL } from '../helpers.js';
import { newTarget, type Target } from './database.js';
import { expectConsistentTimeline, type Load, startLoad, userIds } from './load.js';
import { type Service, startService, stopAll } from './process.js';
import { waitFor } from '../wait.js';

// The scheduler names each process `${hostname()}:${pid}` in job_runs.
const instanceOf = (s: Service) => `${hostname()}:${s.pid}`;
const JOBS = ['aggregate', 'sweep'];

/** Jobs the instance started after `afterMs` (database time), with the first start of each. */
async function runsSince(db: Db, instance: string, afterMs: number) {
  const { rows } = await db.query<{ job: string; first: number }>(
    `SELECT job, min(ck_ms(started_at)) AS first FROM job_runs
      WHERE instance = $1 AND started_at > to_timestamp($2::float8 / 1000) GROUP BY job ORDER BY job`,
    [instance, afterMs],
  );
  return rows;
}

async function dbNow(db: Db): Promise<number> {
  const { rows } = await db.query<{ t: number }>('SELECT ck_ms(clock_timestamp()) AS t');
  return rows[0]!.t;
}

describe.skipIf(!PG_URL)('two instances on one PostgreSQL, one killed with -9', () => {
  let target: Target | undefined;
  let db: Db | undefined;
  afterAll(async () => {
    await stopAll();
    await db?.close();
    await target?.remove();
  });

  it('the survivor keeps serving and takes over the scheduled jobs; no job ever runs twice at once', async () => {
    target = await newTarget('postgres');
    const key = generateKeyString();
    const env = {
      ...target.env, CK_API_KEY: key,
      CK_SWEEP_INTERVAL: '1', CK_AGGREGATE_INTERVAL: '1', CK_HEARTBEAT_TIMEOUT: '4', CK_FLUSH_INTERVAL_MS: '200',
    };
    const services = [await startService(env), await startService(env)];
    db = await target.open();
    const bothUp = await dbNow(db);
    const loads: Load[] = services.map((s, i) => startLoad(s.url, key, userIds(`two${i}-`, 25), 6));
    try {
      // Let both instances compete for a few rounds, then kill the one that ran the latest sweep.
      const leader = await waitFor('three runs of each job while both instances are up', async () => {
        const { rows } = await db!.query<{ job: string; n: number; latest: string }>(
          `SELECT job, count(*)::int AS n, (array_agg(instance ORDER BY started_at DESC))[1] AS latest
             FROM job_runs WHERE started_at > to_timestamp($1::float8 / 1000) GROUP BY job ORDER BY job`, [bothUp],
        );
        return rows.length === 2 && rows.every((r) => r.n >= 3) && rows.find((r) => r.job === 'sweep')!.latest;
      }, 30_000);
      const victim = services.find((s) => instanceOf(s) === leader)!;
      expect(victim).toBeDefined();
      const survivor = services.find((s) => s !== victim)!;
      const survivorLoad = loads[services.indexOf(survivor)]!;

      expect((await victim.kill9()).signal).toBe('SIGKILL');
      const killedAt = await dbNow(db);
      const servedBefore = survivorLoad.acked.length;

      // The survivor runs both jobs from now on (about one interval later; far less than 10 s).
      const taken = await waitFor('the survivor to run both jobs', async () => {
        const rows = await runsSince(db!, instanceOf(survivor), killedAt);
        return rows.length === 2 && rows;
      }, 30_000);
      expect(taken.map((r) => r.job)).toEqual(JOBS);
      for (const r of taken) expect(r.first - killedAt).toBeLessThan(10_000);
      expect(await runsSince(db, leader, killedAt)).toEqual([]);

      // ... and keeps serving: more acknowledged checkpoints, and not one failed request.
      await waitFor('the survivor to acknowledge 20 more checkpoints',
        () => survivorLoad.acked.length >= servedBefore + 20, 30_000);
      await survivorLoad.stop();
      const failed = survivorLoad.outcomes.filter((o) => o.status !== 200 && o.status !== 201);
      expect(failed.slice(0, 5)).toEqual([]);
    } finally {
      await Promise.all(loads.map((l) => l.stop()));
    }

    const { rows: overlaps } = await db.query(
      `SELECT a.job, a.instance AS a, b.instance AS b, a.started_at::text AS a_start, a.finished_at::text AS a_end,
              b.started_at::text AS b_start, b.finished_at::text AS b_end
         FROM job_runs a JOIN job_runs b ON a.job = b.job AND a.id < b.id
        WHERE a.started_at < b.finished_at AND b.started_at < a.finished_at`,
    );
    expect(overlaps).toEqual([]);
    // One run per interval across both instances, not one per instance.
    const { rows: crowded } = await db.query(
      `SELECT job, instance, gap::text FROM (
         SELECT job, instance, started_at - lag(started_at) OVER (PARTITION BY job ORDER BY started_at) AS gap
           FROM job_runs) x
        WHERE gap < interval '900 milliseconds'`,
    );
    expect(crowded).toEqual([]);
    await expectConsistentTimeline(db, loads.flatMap((l) => l.acked));
  }, 120_000);
});
