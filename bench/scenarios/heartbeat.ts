import { startBare, startFastify, startNaive } from '../baselines.js';
import type { Scenario } from '../context.js';
import { beatAll, fastPathCounters, fastPathShare, httpLoad, type LoadResult, median, share } from '../load.js';
import { below, fmt, info, none, ratioAtLeast } from '../report.js';
import { seedOnline, userIds } from '../seed.js';
import type { Proc } from '../service.js';
import { startService } from '../service.js';

const USERS = 10_000;
const CONNECTIONS = 64;
const ROUNDS = 4;

/** Rounds of one server folded into one result: median rate and latencies, summed failures. */
function fold(runs: LoadResult[]): LoadResult {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    failed: runs.reduce((a, r) => a + r.failed, 0),
    statuses: {},
  };
}

/**
 * POST /heartbeat, 64 connections, 10,000 users already known alive (the fast path), against the bare
 * node:http ceiling, an empty Fastify route and the naive one-UPDATE-per-heartbeat server. All four run
 * at once, idle but for the one under load, and are driven in turn for ROUNDS rounds (the median
 * counts): a noisy neighbour on this machine then slows every contender alike, not just one.
 */
export const heartbeat: Scenario = async (ctx) => {
  // The naive server gets a database of its own: all contenders run at once, and PGlite allows one
  // process per data dir.
  const backend = await ctx.backend('heartbeat');
  const naiveBackend = await ctx.backend('heartbeat_naive');
  for (const b of [backend, naiveBackend]) {
    const db = await b.open();
    await seedOnline(db, 'hb', USERS, Date.now());
    await db.close();
  }
  const users = userIds('hb', USERS);
  const bodies = users.map((u) => JSON.stringify({ user_id: u }));
  const perRun = Math.max(2, ctx.durationSec / ROUNDS);
  // Every contender gets the same requests, ck's Authorization header included (the others ignore it).
  const drive = (url: string, warmupSec: number) => httpLoad({
    url, connections: CONNECTIONS, durationSec: perRun, warmupSec,
    headers: { authorization: `Bearer ${svc.key}` },
    requests: (conn) => share(bodies, conn, CONNECTIONS).map((body) => ({ path: '/heartbeat', body })),
  });
  const started = async <T extends Proc>(p: Promise<T>) => {
    const proc = await p;
    ctx.defer(() => proc.stop());
    return proc;
  };

  ctx.log('heartbeat: starting node:http, Fastify, naive and ck');
  const svc = await started(startService(backend));
  await beatAll(svc.url, svc.key, users);
  const contenders: { name: string; proc: Proc; runs: LoadResult[] }[] = [
    { name: 'node:http', proc: await started(startBare()), runs: [] },
    { name: 'fastify', proc: await started(startFastify()), runs: [] },
    { name: 'naive', proc: await started(startNaive(naiveBackend)), runs: [] },
    { name: 'ck', proc: svc, runs: [] },
  ];
  const counters = () => fastPathCounters(svc.url, svc.key, '/heartbeat');
  let before: Awaited<ReturnType<typeof counters>> | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    ctx.log(`heartbeat: round ${round + 1} of ${ROUNDS}`);
    // Each round starts one contender later, so each runs once in every position: whoever follows the
    // naive server runs while PostgreSQL still writes out the naive server's updates.
    for (const c of [...contenders.slice(round), ...contenders.slice(0, round)]) {
      if (c.name === 'ck' && round === 0) {
        await drive(c.proc.url, 0); // warm-up, outside the fast-path counters
        before = await counters();
      }
      c.runs.push(await drive(c.proc.url, round === 0 ? 1 : 0));
    }
  }
  const fastPath = fastPathShare(before!, await counters());
  for (const c of contenders) await c.proc.stop();
  const [bare, framework, naive, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult, LoadResult, LoadResult];

  const rows = [
    ratioAtLeast('heartbeat', 'throughput vs node:http', ck.rps, 'node:http', bare.rps, 0.8),
    ratioAtLeast('heartbeat', 'throughput vs naive', ck.rps, 'naive', naive.rps, 2),
    below('heartbeat', 'p99 latency', ck.p99, 20, fmt.ms),
    info('heartbeat', 'empty Fastify route vs node:http (context)', `${fmt.rate(framework.rps)}, ${(framework.rps / bare.rps).toFixed(2)}x`),
    info('heartbeat', 'p50 latency (ck / node:http / naive)', [ck.p50, bare.p50, naive.p50].map(fmt.ms).join(' / ')),
    info('heartbeat', 'answered from memory (fast path)', `${(fastPath * 100).toFixed(1)}%`),
    none('heartbeat', 'failed requests', { ck: ck.failed, 'node:http': bare.failed, naive: naive.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { users: USERS, connections: CONNECTIONS, rounds: ROUNDS, secondsPerRun: perRun, fastPath, ...raw } };
};
