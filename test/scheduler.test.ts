import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { openPostgres } from '../src/db/postgres.js';
import type { Db } from '../src/db/types.js';
import { CronUnavailableError, installCron, uninstallCron } from '../src/jobs/pg-cron.js';
import { every } from '../src/jobs/every.js';
import { writeHeartbeats } from '../src/liveness/heartbeats.js';
import { BACKENDS, openTestDb, PG_URL, testConfig } from './helpers.js';
import { waitFor } from './wait.js';

const silent = { warn: () => {} };

/** Why pg_cron cannot run jobs for this database, or undefined when it can. */
async function cronUnavailable(db: Db): Promise<string | undefined> {
  try {
    // Fails unless the server preloads pg_cron and cron.database_name is this database (and we may create it).
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_cron');
    await db.query('SELECT count(*) FROM cron.job');
    return undefined;
  } catch (err) {
    return `pg_cron cannot run jobs for this database: ${(err as Error).message}`;
  }
}

describe.each(BACKENDS)('in-app scheduler (%s)', (backend) => {
  it('two instances never run a job at once, and each run is logged in job_runs', async () => {
    const db = await openTestDb(backend);
    await migrate(db);
    // A second "instance": its own pool on the same schema (PGlite: the same single connection).
    const other: Db = backend === 'postgres' ? openPostgres({ url: PG_URL!, schema: db.schema, poolSize: 2 }) : db;
    const spans: [number, number][] = [];
    const job = async () => {
      const start = Date.now();
      await new Promise((r) => setTimeout(r, 40));
      spans.push([start, Date.now()]);
      return { ok: true };
    };
    const a = every(db, 'probe', 20, job, silent);
    const b = every(other, 'probe', 20, job, silent);
    await waitFor('eight runs', async () => (spans.length >= 8 ? true : undefined), 20_000);
    await Promise.all([a.stop(), b.stop()]);
    spans.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM job_runs WHERE job = 'probe'`);
    expect(rows[0]!.n).toBe(spans.length);
    if (other !== db) await other.close();
    await db.close();
    await db.dropSchema();
  });
});

describe('pg_cron scheduler', () => {
  it('gives a clear error without PostgreSQL', async () => {
    const db = await openTestDb('pglite');
    await migrate(db);
    await expect(installCron(db, testConfig())).rejects.toThrow(CronUnavailableError);
    await db.close();
  });

  describe.skipIf(!PG_URL)('on PostgreSQL with pg_cron (CI installs it)', () => {
    let db: Awaited<ReturnType<typeof openTestDb>>;
    afterAll(async () => {
      if (!db) return;
      await uninstallCron(db, testConfig()).catch(() => {});
      await db.close();
      await db.dropSchema();
    });

    it('pg_cron itself runs the sweep and marks a silent user Offline', async (ctx) => {
      db = await openTestDb('postgres');
      await migrate(db);
      // A server without pg_cron, or pg_cron pointed at another database, is the user's setup, not a
      // failure: reported as a skip with the reason (CI sets pg_cron up for the test database).
      const unavailable = await cronUnavailable(db);
      if (unavailable) ctx.skip(unavailable);
      // Last heartbeat five minutes ago.
      await writeHeartbeats(db, [{ user: 'cron-user', session: 'default', at: Date.now() - 300_000, active: true }], { heartbeatSec: 60, idleSec: 300 });
      const names = await installCron(db, testConfig());
      expect(names).toEqual(['sweep', 'aggregate', 'event-prune', 'webhook-prune'].map((j) => `ck-${j}-${db.schema}`));
      await installCron(db, testConfig()); // idempotent
      const { rows: jobs } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM cron.job WHERE jobname = ANY($1)`, [names]);
      expect(jobs[0]!.n).toBe(4);
      // pg_cron 1.4 schedules by the minute: wait for its own run to have written the Offline.
      const run = await waitFor('a pg_cron run of the sweep', async () => {
        const { rows } = await db.query<{ status: string }>(
          `SELECT d.status FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid
            WHERE j.jobname = $1 AND d.status = 'succeeded' LIMIT 1`, [names[0]]);
        const { rows: s } = await db.query<{ current_state: string }>(`SELECT current_state FROM user_sessions WHERE user_id = 'cron-user'`);
        return rows[0] && s[0]?.current_state === 'Offline' ? rows[0] : undefined;
      }, 150_000);
      expect(run.status).toBe('succeeded');
      const { rows: cps } = await db.query<{ state: string; source: string }>(
        `SELECT state, source FROM checkpoints WHERE user_id = 'cron-user' ORDER BY ts`);
      expect(cps).toEqual([{ state: 'Online', source: 'heartbeat' }, { state: 'Offline', source: 'timeout' }]);
      expect(await uninstallCron(db, testConfig())).toEqual(names);
    }, 180_000);
  });
});
