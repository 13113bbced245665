import { generateKeyString } from '../../src/auth/keys.js';
import { startBare } from '../baselines.js';
import type { Scenario } from '../context.js';
import { fastPathCounters, fastPathShare, timed } from '../load.js';
import { below, fmt, info, none, ratioAtLeast, type Row } from '../report.js';
import { generatorRow, mean } from '../rounds.js';
import { seedOnline, vacuum } from '../seed.js';
import { type Proc, startService } from '../service.js';
import { httpLoad } from '../wrk.js';

const USERS = 100_000;
const CONNECTIONS = 64;
/** The first seconds after the restart are measured. */
const WINDOW_SEC = 10;

/**
 * 100,000 users online in the database (fresh heartbeats) and a service just restarted, so none of them
 * is in its memory: POST /heartbeat from each in turn (bench/lua/rotate.lua), measured from the moment
 * the service is ready, for the first 10 s (or BENCH_DURATION if shorter). node:http answers the same
 * requests before and after; their mean is the baseline.
 */
export const cold: Scenario = async (ctx) => {
  const windowSec = Math.min(WINDOW_SEC, ctx.durationSec);
  const backend = await ctx.backend('cold');
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  const key = generateKeyString(); // ck's admin key, sent to node:http as well
  const drive = (proc: Proc, warmupSec: number) => httpLoad({
    url: proc.url, serverPid: proc.pid, connections: CONNECTIONS, durationSec: windowSec, warmupSec,
    script: 'rotate.lua', args: () => ['/heartbeat', 'cold', String(USERS)], key,
  });
  ctx.log('cold: node:http');
  const baseRuns = [await drive(bare, 1)];

  ctx.log(`cold: ${fmt.int(USERS)} users online, then ck started and restarted`);
  const db = await backend.open();
  await seedOnline(db, 'cold', USERS, Date.now());
  await vacuum(db, 'user_sessions', 'sessions', 'session_checkpoints');
  await db.close();
  const first = await startService(backend, key);
  ctx.defer(() => first.stop());
  await first.stop();
  const restart = await timed(() => startService(backend, key));
  const svc = restart.value;
  ctx.defer(() => svc.stop());
  const ck = await drive(svc, 0);
  // Counters start at zero with the process (and have no series before the first request).
  const fastPath = fastPathShare({ coalesced: 0, answered: 0 }, await fastPathCounters(svc.url, svc.key, '/heartbeat'), 1, CONNECTIONS);
  await svc.stop();

  ctx.log('cold: node:http again');
  baseRuns.push(await drive(bare, 0));
  await bare.stop();
  const base = mean(baseRuns);

  const rows: Row[] = [
    ratioAtLeast('cold', `throughput vs node:http, first ${windowSec} s`, ck.rps, 'node:http', base.rps, 0.5),
    below('cold', 'p99 latency', ck.p99, 50, fmt.ms),
    info('cold', 'p50 latency (ck / node:http); ck slowest', `${fmt.ms(ck.p50)} / ${fmt.ms(base.p50)}; ${fmt.ms(ck.max)}`),
    info('cold', 'restart until /readyz answered', fmt.s(restart.ms)),
    info('cold', 'heartbeats answered (per user); from memory, at least', `${fmt.int(ck.requests)} (${(ck.requests / USERS).toFixed(2)}); ${(fastPath * 100).toFixed(1)}%`),
    generatorRow('cold', [['node:http', base], ['ck', ck]]),
    none('cold', 'failed requests', { ck: ck.failed, 'node:http': base.failed }),
  ];
  return { rows, raw: { users: USERS, connections: CONNECTIONS, windowSec, restartMs: restart.ms, fastPath, ck, 'node:http': baseRuns } };
};
