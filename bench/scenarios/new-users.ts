import { startBare } from '../baselines.js';
import type { Scenario } from '../context.js';
import { below, fmt, info, none, ratioAtLeast, type Row } from '../report.js';
import { type Contender, fold, generatorRow, interleave } from '../rounds.js';
import { startService } from '../service.js';
import { httpLoad, type LoadResult } from '../wrk.js';

const CONNECTIONS = 64;
const ROUNDS = 2;

/**
 * POST /heartbeat, each from a user never seen before (bench/lua/new.lua numbers them, a prefix per
 * run): the first heartbeat makes the user Online, a state change. Against node:http answering the
 * same requests, in interleaved rounds.
 */
export const newUsers: Scenario = async (ctx) => {
  const backend = await ctx.backend('new');
  // The schema and its migrations, as every scenario has them before the service starts.
  await (await backend.open()).close();
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  const perRun = Math.max(2, Math.round(ctx.durationSec / ROUNDS)); // wrk takes whole seconds
  const contenders: Contender[] = [{ name: 'node:http', proc: bare, runs: [] }, { name: 'ck', proc: svc, runs: [] }];
  await interleave(contenders, ROUNDS, (c, round) => httpLoad({
    url: c.proc.url, serverPid: c.proc.pid, connections: CONNECTIONS, durationSec: perRun, warmupSec: round === 0 ? 1 : 0,
    script: 'new.lua', args: (run) => ['/heartbeat', `new${run}_`], key: svc.key,
  }), (m) => ctx.log(`new: ${m}`));
  await svc.stop();
  await bare.stop();
  const [base, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult];

  const rows: Row[] = [
    ratioAtLeast('new', 'throughput vs node:http', ck.rps, 'node:http', base.rps, 0.3),
    below('new', 'p99 latency', ck.p99, 50, fmt.ms),
    info('new', 'p50 latency (ck / node:http)', [ck.p50, base.p50].map(fmt.ms).join(' / ')),
    generatorRow('new', [['node:http', base], ['ck', ck]]),
    none('new', 'failed requests', { ck: ck.failed, 'node:http': base.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { connections: CONNECTIONS, rounds: ROUNDS, secondsPerRun: perRun, ...raw } };
};
