import { startBare, startFastify, startNaive } from '../baselines.js';
import type { Scenario } from '../context.js';
import { beatAll, fastPathCounters, fastPathShare } from '../load.js';
import { below, fmt, info, none, ratioAtLeast, ratioBelow, type Row } from '../report.js';
import { type Contender, fold, generatorRow, interleave } from '../rounds.js';
import { seedOnline, userIds } from '../seed.js';
import type { Proc } from '../service.js';
import { startService } from '../service.js';
import { httpLoad, type LoadResult } from '../wrk.js';

const USERS = 10_000;
const CONNECTIONS = 64;
const ROUNDS = 4;
/** The empty Fastify route must stay clearly below node:http, or the generator capped both. */
const FASTIFY_SANITY = 0.95;
const cpuPerRequest = (r: LoadResult) => `${((r.serverCpu / 100 / r.rps) * 1e6).toFixed(1)} µs`;

/**
 * POST /heartbeat, 64 connections, 10,000 users already known alive (the fast path), against the bare
 * node:http ceiling, an empty Fastify route and the naive one-UPDATE-per-heartbeat server. All four run
 * at once, idle but for the one under load, and are driven in turn for ROUNDS rounds (the median
 * counts). wrk (bench/lua/rotate.lua) sends each request to the next of the 10,000 users.
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
  const perRun = Math.max(2, Math.round(ctx.durationSec / ROUNDS)); // wrk takes whole seconds
  // Every contender gets the same requests, ck's Authorization header included (the others ignore it).
  const drive = (proc: Proc, durationSec: number, warmupSec: number) => httpLoad({
    url: proc.url, serverPid: proc.pid, connections: CONNECTIONS, durationSec, warmupSec,
    script: 'rotate.lua', args: () => ['/heartbeat', 'hb', String(USERS)], key: svc.key,
  });
  const started = async <T extends Proc>(p: Promise<T>) => {
    const proc = await p;
    ctx.defer(() => proc.stop());
    return proc;
  };

  ctx.log('heartbeat: starting node:http, Fastify, naive and ck');
  const svc = await started(startService(backend));
  await beatAll(svc.url, svc.key, userIds('hb', USERS));
  const contenders: Contender[] = [
    { name: 'node:http', proc: await started(startBare()), runs: [] },
    { name: 'fastify', proc: await started(startFastify()), runs: [] },
    { name: 'naive', proc: await started(startNaive(naiveBackend)), runs: [] },
    { name: 'ck', proc: svc, runs: [] },
  ];
  const counters = () => fastPathCounters(svc.url, svc.key, '/heartbeat');
  let before: Awaited<ReturnType<typeof counters>> | undefined;
  await interleave(contenders, ROUNDS, async (c, round) => {
    if (c.name === 'ck' && round === 0) {
      await drive(c.proc, 1, 0); // warm-up, outside the fast-path counters
      before = await counters();
    }
    return drive(c.proc, perRun, round === 0 ? 1 : 0);
  }, (m) => ctx.log(`heartbeat: ${m}`));
  const fastPath = fastPathShare(before!, await counters(), 1, (ROUNDS + 2) * CONNECTIONS); // each wrk run's tail
  for (const c of contenders) await c.proc.stop();
  const [bare, framework, naive, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult, LoadResult, LoadResult];

  const rows: Row[] = [
    ratioAtLeast('heartbeat', 'throughput vs node:http', ck.rps, 'node:http', bare.rps, 0.8),
    ratioAtLeast('heartbeat', 'throughput vs naive', ck.rps, 'naive', naive.rps, 2),
    below('heartbeat', 'p99 latency', ck.p99, 20, fmt.ms),
    ratioBelow('heartbeat', 'headroom: empty Fastify route vs node:http', framework.rps, 'node:http', bare.rps, FASTIFY_SANITY),
    generatorRow('heartbeat', [['node:http', bare], ['fastify', framework], ['naive', naive], ['ck', ck]]),
    // Robust to a busy neighbour, which lowers every rate but not the CPU each request costs.
    info('heartbeat', 'server CPU per request (ck / node:http / fastify)', [ck, bare, framework].map(cpuPerRequest).join(' / ')),
    info('heartbeat', 'p50 latency (ck / node:http / naive)', [ck.p50, bare.p50, naive.p50].map(fmt.ms).join(' / ')),
    info('heartbeat', 'answered from memory (fast path), at least', `${(fastPath * 100).toFixed(1)}%`),
    none('heartbeat', 'failed requests', { ck: ck.failed, 'node:http': bare.failed, naive: naive.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { users: USERS, connections: CONNECTIONS, rounds: ROUNDS, secondsPerRun: perRun, fastPath, ...raw } };
};
