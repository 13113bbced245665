import type { Scenario } from '../context.js';
import { beatAll, type FastPathCounters, fastPathCounters, fastPathShare } from '../load.js';
import { atLeast, fmt, info, none } from '../report.js';
import { generatorRow } from '../rounds.js';
import { seedOnline, userIds } from '../seed.js';
import { startService } from '../service.js';
import { httpLoad } from '../wrk.js';

const PER_REQUEST = 1000;
const CONNECTIONS = 16;

/** POST /heartbeats with 1,000 users a request (a gateway), over up to 100,000 users known alive. */
export const batch: Scenario = async (ctx) => {
  const n = Math.max(PER_REQUEST, Math.min(100_000, ctx.users));
  const backend = await ctx.backend('batch');
  const db = await backend.open();
  await seedOnline(db, 'gw', n, Date.now());
  await db.close();
  const users = userIds('gw', n);

  ctx.log(`batch: ck, ${fmt.int(n)} users in batches of ${PER_REQUEST}`);
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  await beatAll(svc.url, svc.key, users, PER_REQUEST);
  const counters = () => fastPathCounters(svc.url, svc.key, '/heartbeats');
  let before: FastPathCounters | undefined;
  const r = await httpLoad({
    beforeMeasure: async () => {
      before = await counters();
    },
    url: svc.url, serverPid: svc.pid, connections: CONNECTIONS, durationSec: ctx.durationSec, warmupSec: 1,
    script: 'batch.lua', args: () => ['gw', String(n), String(PER_REQUEST)], key: svc.key,
  });
  const fastPath = fastPathShare(before!, await counters(), PER_REQUEST, 2 * CONNECTIONS); // warm-up's tail, the run's
  await svc.stop();

  const rate = r.rps * PER_REQUEST;
  return {
    rows: [
      atLeast('batch', `heartbeats/s (${PER_REQUEST} a request)`, rate, 250_000, fmt.rate),
      info('batch', 'requests/s, p50 / p99', `${fmt.rate(r.rps)}, ${fmt.ms(r.p50)} / ${fmt.ms(r.p99)}`),
      info('batch', 'answered from memory (fast path), at least', `${(fastPath * 100).toFixed(1)}%`),
      generatorRow('batch', [['ck', r]]),
      none('batch', 'failed requests', { ck: r.failed }),
    ],
    raw: { users: n, perRequest: PER_REQUEST, connections: CONNECTIONS, heartbeatsPerSec: rate, ck: r, fastPath },
  };
};
