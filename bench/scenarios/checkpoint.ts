import { checkpointCeiling, startBare } from '../baselines.js';
import type { Scenario } from '../context.js';
import { type CommitWindow, commitWindow, sumWindows } from '../pg-stats.js';
import { below, fmt, info, none, ratioAtLeast, type Row } from '../report.js';
import { type Contender, fold, generatorRow, interleave } from '../rounds.js';
import { startService } from '../service.js';
import { httpLoad, type LoadResult } from '../wrk.js';

const CONNECTIONS = 64;
const ROUNDS = 2;
/** Users each run alternates (bench/lua/checkpoint.lua: one request in flight per user). */
const USERS = 1024;

/**
 * POST /checkpoints, each a state change, committed before the 201, against node:http answering the
 * same requests, in interleaved rounds. For context: ck's checkpoint SQL from Node with the same pool
 * and concurrency (the "SQL ceiling" of one transaction per checkpoint), and on PostgreSQL the
 * commits per second and checkpoint rows per commit while ck runs.
 */
export const checkpoint: Scenario = async (ctx) => {
  const backend = await ctx.backend('checkpoint');
  ctx.log('checkpoint: SQL ceiling (no HTTP)');
  const db = await backend.open();
  let sql;
  let durability = '';
  try {
    // "Durable before 201": the commit waits for the WAL flush unless the server was told otherwise.
    const { rows } = await db.query<{ s: string; f: string }>(
      `SELECT current_setting('synchronous_commit') AS s, current_setting('fsync') AS f`);
    durability = `synchronous_commit=${rows[0]!.s}, fsync=${rows[0]!.f}`;
    sql = await checkpointCeiling(db, backend, CONNECTIONS, ctx.durationSec);
  } finally {
    await db.close();
  }

  ctx.log('checkpoint: node:http and ck');
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  // A connection of our own for the commit counters (PGlite allows the service's only).
  const stats = backend.kind === 'postgres' ? await backend.open() : undefined;
  ctx.defer(async () => stats?.close());
  const windows: Promise<CommitWindow>[] = [];
  const perRun = Math.max(2, Math.round(ctx.durationSec / ROUNDS)); // wrk takes whole seconds
  const contenders: Contender[] = [{ name: 'node:http', proc: bare, runs: [] }, { name: 'ck', proc: svc, runs: [] }];
  await interleave(contenders, ROUNDS, (c, round) => httpLoad({
    url: c.proc.url, serverPid: c.proc.pid, connections: CONNECTIONS, durationSec: perRun, warmupSec: round === 0 ? 1 : 0,
    // Every run its own users: a run's last requests may be left unanswered.
    script: 'checkpoint.lua', args: (run) => [`cp${run}_`, String(USERS)], key: svc.key,
    beforeMeasure: async () => {
      if (stats && c.name === 'ck') windows.push(commitWindow(stats, perRun));
    },
  }), (m) => ctx.log(`checkpoint: ${m}`));
  const w = windows.length ? sumWindows(await Promise.all(windows)) : undefined;
  await svc.stop();
  await bare.stop();
  const [base, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult];

  const created = ck.statuses['201'] ?? 0;
  const rows: Row[] = [
    ratioAtLeast('checkpoint', 'throughput vs node:http', ck.rps, 'node:http', base.rps, 0.3),
    below('checkpoint', 'p99 latency', ck.p99, 50, fmt.ms),
    info('checkpoint', 'SQL ceiling, one transaction a checkpoint (context)', `${fmt.rate(sql.rps)}, ck ${(ck.rps / sql.rps).toFixed(2)}x`),
    info('checkpoint', 'p50 latency (ck / node:http / SQL)', [ck.p50, base.p50, sql.p50].map(fmt.ms).join(' / ')),
    ...(w ? [
      info('checkpoint', 'commits/s, rows per commit (database)', `${fmt.rate(w.commits / w.sec)}, ${(w.rows / w.commits).toFixed(2)}`),
      info('checkpoint', 'writing transactions/s, rows per one; WAL flushes/s', `${fmt.rate(w.writes / w.sec)}, ${(w.rows / w.writes).toFixed(2)}; ${fmt.rate(w.walSyncs / w.sec)}`),
    ] : []),
    generatorRow('checkpoint', [['node:http', base], ['ck', ck]]),
    none('checkpoint', 'not a 201 change', { ck: ck.requests - created, SQL: sql.unchanged }),
    none('checkpoint', 'failed requests', { ck: ck.failed, 'node:http': base.failed }),
    info('checkpoint', 'server durability settings', durability),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { durability, connections: CONNECTIONS, users: USERS, poolSize: backend.config.poolSize, commits: w, sql, ...raw } };
};
