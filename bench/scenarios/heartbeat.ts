import { startBare, startNaive } from '../baselines.js';
import type { Scenario } from '../context.js';
import { beatAll, type FastPathCounters, fastPathCounters, fastPathShare, httpLoad, type LoadResult, share } from '../load.js';
import { below, fmt, info, none, ratioAtLeast } from '../report.js';
import { seedOnline, userIds } from '../seed.js';
import { startService } from '../service.js';

const USERS = 10_000;
const CONNECTIONS = 64;

/**
 * POST /heartbeat, 64 connections, 10,000 users already known alive (the fast path), against the bare
 * node:http ceiling and the naive one-UPDATE-per-heartbeat server. The three run one after another
 * with the same load generator and request bodies.
 */
export const heartbeat: Scenario = async (ctx) => {
  const backend = await ctx.backend('heartbeat');
  const db = await backend.open();
  await seedOnline(db, 'hb', USERS, Date.now());
  await db.close();
  const users = userIds('hb', USERS);
  const bodies = users.map((u) => JSON.stringify({ user_id: u }));
  const drive = (url: string, key?: string, beforeMeasure?: () => Promise<void>) => httpLoad({
    url, beforeMeasure, connections: CONNECTIONS, durationSec: ctx.durationSec, warmupSec: 1,
    headers: key ? { authorization: `Bearer ${key}` } : {},
    requests: (conn) => share(bodies, conn, CONNECTIONS).map((body) => ({ path: '/heartbeat', body })),
  });
  const run = async (name: string, start: () => Promise<{ url: string; stop(): Promise<void> }>, key?: string) => {
    ctx.log(`heartbeat: ${name}`);
    const p = await start();
    ctx.defer(() => p.stop());
    try {
      return await drive(p.url, key);
    } finally {
      await p.stop();
    }
  };

  const bare = await run('bare node:http', startBare);
  const naive = await run('naive UPDATE per heartbeat', () => startNaive(backend));

  ctx.log('heartbeat: ck');
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  await beatAll(svc.url, svc.key, users);
  const counters = () => fastPathCounters(svc.url, svc.key, '/heartbeat');
  let before: FastPathCounters | undefined;
  const ck: LoadResult = await drive(svc.url, svc.key, async () => {
    before = await counters();
  });
  const fastPath = fastPathShare(before!, await counters());
  await svc.stop();

  const rows = [
    ratioAtLeast('heartbeat', 'throughput vs node:http', ck.rps, 'node:http', bare.rps, 0.8),
    ratioAtLeast('heartbeat', 'throughput vs naive', ck.rps, 'naive', naive.rps, 2),
    below('heartbeat', 'p99 latency', ck.p99, 20, fmt.ms),
    info('heartbeat', 'p50 latency (ck / node:http / naive)', [ck.p50, bare.p50, naive.p50].map(fmt.ms).join(' / ')),
    info('heartbeat', 'answered from memory (fast path)', `${(fastPath * 100).toFixed(1)}%`),
    none('heartbeat', 'failed requests', { ck: ck.failed, 'node:http': bare.failed, naive: naive.failed }),
  ];
  return { rows, raw: { users: USERS, connections: CONNECTIONS, ck, bare, naive, fastPath } };
};
