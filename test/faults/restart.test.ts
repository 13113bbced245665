import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyString } from '../../src/auth/keys.js';
import type { Db } from '../../src/db/types.js';
import { PG_URL } from '../helpers.js';
import { waitFor } from '../wait.js';
import { newTarget, type Target } from './database.js';
import { type Service, startService, stopAll } from './process.js';

/**
 * A client in front of several instances, as a load balancer with connection retries is: a request that
 * cannot reach an instance (refused, reset before any answer) goes to the next one. Any answer counts.
 */
function balancedLoad(instances: () => Service[], key: string, users: string[], workers: number) {
  const statuses = new Map<number, number>();
  let stopped = false;
  let sent = 0;
  let slowest = 0;
  const one = async (user: string) => {
    const list = instances();
    for (let attempt = 0; attempt < 20; attempt++) {
      const target = list[(sent + attempt) % list.length]!;
      const started = Date.now();
      try {
        const res = await fetch(`${target.url}/heartbeat`, {
          method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ user_id: user }), signal: AbortSignal.timeout(10_000),
        });
        await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        slowest = Math.max(slowest, Date.now() - started);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 20)); // not reached: the next instance
      }
    }
    statuses.set(0, (statuses.get(0) ?? 0) + 1);
  };
  const runs = Array.from({ length: workers }, async (_, w) => {
    for (let i = w; !stopped; i += workers) {
      sent++;
      await one(users[i % users.length]!);
    }
  });
  return {
    statuses,
    slowest: () => slowest,
    async stop() {
      stopped = true;
      await Promise.all(runs);
    },
  };
}

describe.skipIf(!PG_URL)('restarting an instance under heartbeat load (postgres)', () => {
  let target: Target | undefined;
  let db: Db | undefined;
  afterAll(async () => {
    await stopAll();
    await db?.close();
    await target?.remove();
  });

  it('fails no request, and the restarted instance takes its cold users without a write each', async () => {
    target = await newTarget('postgres');
    const key = generateKeyString();
    const env = { ...target.env, CK_API_KEY: key, CK_SCHEDULER: 'off', CK_FLUSH_INTERVAL_MS: '250' };
    let live = [await startService(env), await startService(env)];
    db = await target.open();
    const users = Array.from({ length: 3000 }, (_, i) => `r-${i}`);
    const load = balancedLoad(() => live, key, users, 32);
    try {
      await waitFor('every user online', async () => {
        const { rows } = await db!.query<{ n: number }>(`SELECT count(*)::int AS n FROM user_sessions WHERE current_state = 'Online'`);
        return rows[0]!.n === users.length;
      }, 60_000);
      const { rows: before } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM checkpoints');
      // Restart one instance (SIGTERM, drained), then the other, each replaced by a cold new process.
      for (let i = 0; i < 2; i++) {
        const old = live[0]!;
        const fresh = await startService(env);
        live = [live[1]!, fresh];
        expect((await old.terminate()).code).toBe(0);
        await new Promise((r) => setTimeout(r, 2000));
      }
      await load.stop();
      expect([...load.statuses.entries()]).toEqual([[200, expect.any(Number)]]);
      // Cold users were looked up, not written: no state changed, so no checkpoint was added.
      const { rows: after } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM checkpoints');
      expect(after[0]!.n).toBe(before[0]!.n);
      expect(load.slowest()).toBeLessThan(5000);
    } finally {
      await load.stop();
    }
  }, 180_000);
});
