import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import type { Db } from '../src/db/types.js';
import { CronUnavailableError, installCron, uninstallCron } from '../src/jobs/pg-cron.js';
import { every } from '../src/jobs/every.js';
import { recordCheckpoint } from '../src/checkpoints/record.js';
import { writeHeartbeats } from '../src/liveness/heartbeats.js';
import { setManual } from '../src/users/presence.js';
import { openTestDb, PG_URL, testConfig, WITH_POOLER } from './helpers.js';
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

describe.each(WITH_POOLER)('in-app scheduler (%s)', (backend) => {
  it('two instances never run a job at once, and each run is logged in job_runs', async () => {
    const db = await openTestDb(backend);
    await migrate(db);
    // A second "instance": its own pool on the same schema (PGlite: the same single connection).
    const other: Db = await db.reopen(2);
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
      await uninstallCron(db, testConfig({ CK_HEARTBEAT_TIMEOUT: '3600', CK_IDLE_TIMEOUT: '60' })).catch(() => {});
      await db.close();
      await db.dropSchema();
    });

    it('pg_cron itself runs the sweep, stamping Offline, idle Away and manual fall-back at their exact instants', async (ctx) => {
      db = await openTestDb('postgres');
      await migrate(db);
      // A server without pg_cron, or pg_cron pointed at another database, is the user's setup, not a
      // failure: reported as a skip with the reason (CI sets pg_cron up for the test database).
      const unavailable = await cronUnavailable(db);
      if (unavailable) ctx.skip(unavailable);
      // A one-hour heartbeat timeout keeps sessions alive for the whole wait; one minute of idleness is Away.
      const config = testConfig({ CK_HEARTBEAT_TIMEOUT: '3600', CK_IDLE_TIMEOUT: '60' });
      const t = { heartbeatSec: 3600, idleSec: 60 };
      const T = Date.now();
      // gone: last heartbeat two hours ago, so Away a minute later and Offline at T - 2 h + 1 h.
      await writeHeartbeats(db, [{ user: 'gone', session: 'default', at: T - 7_200_000, active: true }], t);
      // idle: last active two minutes ago, heartbeats since without activity: Away at T - 120 s + 60 s.
      await writeHeartbeats(db, [{ user: 'idle', session: 'laptop', at: T - 120_000, active: true }], t);
      await writeHeartbeats(db, [{ user: 'idle', session: 'laptop', at: T - 10_000, active: false }], t);
      // dnd: Busy (which does not decay) under a manual DoNotDisturb that ends at T + 2 s.
      await recordCheckpoint(db, { userId: 'dnd', sessionId: 'phone', state: 'Busy', ts: T - 30_000 }, T - 30_000, t);
      await setManual(db, 'dnd', 'DoNotDisturb', T + 2_000, T - 20_000, t);
      const names = await installCron(db, config);
      expect(names).toEqual(['sweep', 'aggregate', 'event-prune', 'webhook-prune'].map((j) => `ck-${j}-${db.schema}`));
      await installCron(db, config); // idempotent
      const { rows: jobs } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM cron.job WHERE jobname = ANY($1)`, [names]);
      expect(jobs[0]!.n).toBe(4);
      // pg_cron 1.4 schedules by the minute: wait for its own runs to have written all three changes.
      const current = async () => Object.fromEntries((await db.query<{ user_id: string; current_state: string }>(
        `SELECT user_id, current_state FROM user_sessions ORDER BY user_id`)).rows.map((r) => [r.user_id, r.current_state]));
      await waitFor('pg_cron runs of the sweep', async () => {
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid
            WHERE j.jobname = $1 AND d.status = 'succeeded'`, [names[0]]);
        const c = await current();
        return rows[0]!.n > 0 && c.gone === 'Offline' && c.idle === 'Away' && c.dnd === 'Busy' ? true : undefined;
      }, 150_000);
      const { rows: cps } = await db.query<{ user_id: string; state: string; source: string; ts: number }>(
        `SELECT user_id, state, source, ck_ms(ts) AS ts FROM checkpoints ORDER BY user_id, ts`);
      expect(cps).toEqual([
        { user_id: 'dnd', state: 'Busy', source: 'client', ts: T - 30_000 },
        { user_id: 'dnd', state: 'DoNotDisturb', source: 'manual', ts: T - 20_000 },
        { user_id: 'dnd', state: 'Busy', source: 'manual', ts: T + 2_000 },
        { user_id: 'gone', state: 'Online', source: 'heartbeat', ts: T - 7_200_000 },
        { user_id: 'gone', state: 'Away', source: 'idle', ts: T - 7_140_000 },
        { user_id: 'gone', state: 'Offline', source: 'timeout', ts: T - 3_600_000 },
        { user_id: 'idle', state: 'Online', source: 'heartbeat', ts: T - 120_000 },
        { user_id: 'idle', state: 'Away', source: 'idle', ts: T - 60_000 },
      ]);
      expect(await uninstallCron(db, config)).toEqual(names);
    }, 180_000);
  });
});
