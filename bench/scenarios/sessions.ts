import { checkpointCeiling, startBare } from '../baselines.js';
import type { Scenario } from '../context.js';
import { client, fastPathCounters, type FastPathCounters } from '../load.js';
import { type CommitWindow, commitWindow, sumWindows } from '../pg-stats.js';
import { below, fmt, info, none, ratioAtLeast, type Row } from '../report.js';
import { type Contender, fold, generatorRow, interleave } from '../rounds.js';
import { userId } from '../seed.js';
import { type Proc, startService } from '../service.js';
import { httpLoad, type LoadResult } from '../wrk.js';

/**
 * Sessions (docs/presence-model.md, issue 13): heartbeats and checkpoints that name a session_id.
 * - `sessions`: the fast path, users with two sessions each, against node:http answering the same
 *   requests, with ck's single-session heartbeat in the same rounds for comparison;
 * - `sessions-new`: the first heartbeat of a new session of a user ck already holds (a write);
 * - `sessions-checkpoint`: session checkpoints, each a state change of its session (durable before 201).
 */

const CONNECTIONS = 64;
const SESSIONS = ['laptop', 'phone'];
const cpuPerRequest = (r: LoadResult) => `${((r.serverCpu / 100 / r.rps) * 1e6).toFixed(1)} µs`;

/** Heartbeats for (user, session) pairs through POST /heartbeats `sessions`, `per` a request. */
export async function beatSessions(url: string, key: string, beats: { user_id: string; session_id: string }[], per = 1000, concurrency = 4): Promise<void> {
  const call = client(url, key);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < beats.length) {
      const part = beats.slice(next, next + per);
      next += per;
      await call('POST', '/heartbeats', { sessions: part });
    }
  }));
}

const pairs = (prefix: string, n: number, sessions: string[]) =>
  sessions.flatMap((session_id) => Array.from({ length: n }, (_, k) => ({ user_id: userId(prefix, k + 1), session_id })));

const perRunSec = (durationSec: number, rounds: number) => Math.max(2, Math.round(durationSec / rounds)); // wrk takes whole seconds

/**
 * POST /heartbeat with `session_id`, 10,000 users x 2 sessions already held by ck (bench/lua/sessions.lua),
 * against node:http answering the same requests; and, in the same rounds, single-session heartbeats
 * (no session_id: the "default" session) of 10,000 other users, to ck and to node:http.
 */
export const sessions: Scenario = async (ctx) => {
  const USERS = 10_000;
  const ROUNDS = 4;
  const backend = await ctx.backend('sessions');
  await (await backend.open()).close();
  // Starting 30,000 sessions (a write each) took 50-70 s on a slow day: with the 60 s timeout the first
  // users' sessions expired before the rounds, each heartbeat of them became a write (a restart), the
  // cycle through 20,000 requests slowed past the timeout and never recovered (625/s, 48% from memory).
  // A 10-minute timeout keeps the rounds measuring users ck holds; the fast path's work is the same.
  const svc = await startService({ ...backend, env: { ...backend.env, CK_HEARTBEAT_TIMEOUT: '600' } });
  ctx.defer(() => svc.stop());
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  // Every user's sessions start (a write each) before the rounds: the rounds measure users ck holds.
  await beatSessions(svc.url, svc.key, pairs('ss', USERS, SESSIONS));
  await beatSessions(svc.url, svc.key, pairs('s1', USERS, ['default']));

  const two = (proc: Proc, durationSec: number, warmupSec: number) => httpLoad({
    url: proc.url, serverPid: proc.pid, connections: CONNECTIONS, durationSec, warmupSec,
    script: 'sessions.lua', args: () => ['/heartbeat', 'ss', String(USERS), SESSIONS.join(',')], key: svc.key,
  });
  const one = (proc: Proc, durationSec: number, warmupSec: number) => httpLoad({
    url: proc.url, serverPid: proc.pid, connections: CONNECTIONS, durationSec, warmupSec,
    script: 'rotate.lua', args: () => ['/heartbeat', 's1', String(USERS)], key: svc.key,
  });
  const perRun = perRunSec(ctx.durationSec, ROUNDS);
  const contenders: Contender[] = [
    { name: 'node:http', proc: bare, runs: [] },
    { name: 'ck', proc: svc, runs: [] },
    { name: 'node:http 1 session', proc: bare, runs: [] },
    { name: 'ck 1 session', proc: svc, runs: [] },
  ];
  // The fast-path share of the two-session runs only: counters read around each of them.
  const counters = () => fastPathCounters(svc.url, svc.key, '/heartbeat');
  const share = { coalesced: 0, answered: 0, runs: 0 };
  await interleave(contenders, ROUNDS, async (c, round) => {
    const drive = c.name.endsWith('1 session') ? one : two;
    if (c.name !== 'ck') return drive(c.proc, perRun, round === 0 ? 1 : 0);
    if (round === 0) await drive(c.proc, 1, 0); // warm-up, outside the counters
    const a: FastPathCounters = await counters();
    const r = await drive(c.proc, perRun, 0);
    const b = await counters();
    share.coalesced += b.coalesced - a.coalesced;
    share.answered += b.answered - a.answered;
    share.runs++;
    return r;
  }, (m) => ctx.log(`sessions: ${m}`));
  await svc.stop();
  await bare.stop();
  // Requests in flight when a wrk run stops are coalesced but never answered: one per connection a run.
  const fastPath = share.coalesced / (share.answered + share.runs * CONNECTIONS);
  const [base, ck, base1, ck1] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult, LoadResult, LoadResult];

  const rows: Row[] = [
    ratioAtLeast('sessions', 'throughput vs node:http (2 sessions a user)', ck.rps, 'node:http', base.rps, 0.8),
    below('sessions', 'p99 latency', ck.p99, 20, fmt.ms),
    info('sessions', 'single-session heartbeats, same rounds (ck / node:http)', `${fmt.rate(ck1.rps)} / ${fmt.rate(base1.rps)} = ${(ck1.rps / base1.rps).toFixed(2)}x; 2 sessions / 1: ${(ck.rps / ck1.rps).toFixed(2)}x`),
    info('sessions', 'server CPU per request (ck / ck 1 session / node:http)', [ck, ck1, base].map(cpuPerRequest).join(' / ')),
    info('sessions', 'p50 / p99 latency (ck 1 session)', `${fmt.ms(ck1.p50)} / ${fmt.ms(ck1.p99)}`),
    info('sessions', 'answered from memory (fast path), at least', `${(fastPath * 100).toFixed(1)}%`),
    generatorRow('sessions', [['node:http', base], ['ck', ck], ['node:http 1s', base1], ['ck 1s', ck1]]),
    none('sessions', 'failed requests', { ck: ck.failed, 'ck 1 session': ck1.failed, 'node:http': base.failed + base1.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { users: USERS, sessions: SESSIONS, connections: CONNECTIONS, rounds: ROUNDS, secondsPerRun: perRun, fastPath, ...raw } };
};

/**
 * POST /heartbeat naming a session never seen before, of one of 10,000 users ck holds (each already has
 * its "default" session): a session starts, durable before the answer; the user stays Online
 * (bench/lua/new-session.lua). Against node:http answering the same requests.
 */
export const sessionsNew: Scenario = async (ctx) => {
  const USERS = 10_000;
  const ROUNDS = 2;
  const backend = await ctx.backend('sessions_new');
  await (await backend.open()).close();
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  const held = pairs('ns', USERS, ['default']);
  await beatSessions(svc.url, svc.key, held);
  const perRun = perRunSec(ctx.durationSec, ROUNDS);
  const contenders: Contender[] = [{ name: 'node:http', proc: bare, runs: [] }, { name: 'ck', proc: svc, runs: [] }];
  await interleave(contenders, ROUNDS, async (c, round) => {
    // The users' own session stays alive (CK_HEARTBEAT_TIMEOUT) whatever the rounds last: a new session
    // then never changes the user's state.
    if (c.name === 'ck') await beatSessions(svc.url, svc.key, held);
    return httpLoad({
      url: c.proc.url, serverPid: c.proc.pid, connections: CONNECTIONS, durationSec: perRun, warmupSec: round === 0 ? 1 : 0,
      script: 'new-session.lua', args: (run) => ['/heartbeat', 'ns', String(USERS), `r${String(run).padStart(3, '0')}_`], key: svc.key,
    });
  }, (m) => ctx.log(`sessions-new: ${m}`));
  const stats = backend.kind === 'postgres' ? await backend.open() : undefined;
  let sessionsAlive = NaN;
  await svc.stop();
  await bare.stop();
  if (stats) {
    sessionsAlive = Number((await stats.query<{ n: string }>(`SELECT count(*)::text AS n FROM sessions`)).rows[0]!.n);
    await stats.close();
  }
  const [base, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult];

  const rows: Row[] = [
    ratioAtLeast('sessions-new', 'throughput vs node:http', ck.rps, 'node:http', base.rps, 0.3),
    below('sessions-new', 'p99 latency', ck.p99, 50, fmt.ms),
    info('sessions-new', 'p50 latency (ck / node:http)', [ck.p50, base.p50].map(fmt.ms).join(' / ')),
    info('sessions-new', 'sessions alive at the end (users x 1 + new ones)', Number.isNaN(sessionsAlive) ? 'n/a' : fmt.int(sessionsAlive)),
    generatorRow('sessions-new', [['node:http', base], ['ck', ck]]),
    none('sessions-new', 'failed requests', { ck: ck.failed, 'node:http': base.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { users: USERS, connections: CONNECTIONS, rounds: ROUNDS, secondsPerRun: perRun, sessionsAlive, ...raw } };
};

/**
 * POST /checkpoints with session_id "call", alternating Away/Busy (bench/lua/session-checkpoint.lua),
 * for 1,024 users a run who also have a session "laptop" held Online: every request changes its
 * session's state, and every one but each user's first also the user's (Busy 40 > Online 30 > Away 20).
 * Durable before the 201. Against node:http answering the same requests; for context, the checkpoint
 * scenario's SQL ceiling (ck_record_checkpoints one row a transaction, default session) and, on
 * PostgreSQL, commits, rows per commit and WAL flushes while ck runs.
 */
export const sessionsCheckpoint: Scenario = async (ctx) => {
  const USERS = 1024;
  const ROUNDS = 2;
  const backend = await ctx.backend('sessions_checkpoint');
  ctx.log('sessions-checkpoint: SQL ceiling (no HTTP, the checkpoint scenario\'s)');
  const db = await backend.open();
  let sql;
  try {
    sql = await checkpointCeiling(db, backend, CONNECTIONS, ctx.durationSec);
  } finally {
    await db.close();
  }

  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const bare = await startBare();
  ctx.defer(() => bare.stop());
  const stats = backend.kind === 'postgres' ? await backend.open() : undefined;
  ctx.defer(async () => stats?.close());
  const windows: Promise<CommitWindow>[] = [];
  const perRun = perRunSec(ctx.durationSec, ROUNDS);
  let k = 0;
  const contenders: Contender[] = [{ name: 'node:http', proc: bare, runs: [] }, { name: 'ck', proc: svc, runs: [] }];
  await interleave(contenders, ROUNDS, async (c, round) => {
    // Each wrk run its own users (a run's last requests may be left unanswered), each with "laptop"
    // Online just before the run.
    const prefixes = (round === 0 ? [k++, k++] : [k++]).map((i) => `sc${String(i).padStart(2, '0')}_`);
    if (c.name === 'ck') for (const p of prefixes) await beatSessions(svc.url, svc.key, pairs(p, USERS, ['laptop']));
    let next = 0;
    return httpLoad({
      url: c.proc.url, serverPid: c.proc.pid, connections: CONNECTIONS, durationSec: perRun, warmupSec: round === 0 ? 1 : 0,
      script: 'session-checkpoint.lua', args: () => [prefixes[next++]!, String(USERS), 'call'], key: svc.key,
      beforeMeasure: async () => {
        if (stats && c.name === 'ck') windows.push(commitWindow(stats, perRun));
      },
    });
  }, (m) => ctx.log(`sessions-checkpoint: ${m}`));
  const w = windows.length ? sumWindows(await Promise.all(windows)) : undefined;
  await svc.stop();
  await bare.stop();
  const [base, ck] = contenders.map((c) => fold(c.runs)) as [LoadResult, LoadResult];

  const created = ck.statuses['201'] ?? 0;
  const rows: Row[] = [
    ratioAtLeast('sessions-checkpoint', 'throughput vs node:http', ck.rps, 'node:http', base.rps, 0.3),
    below('sessions-checkpoint', 'p99 latency', ck.p99, 50, fmt.ms),
    info('sessions-checkpoint', 'SQL ceiling, one transaction a checkpoint (context)', `${fmt.rate(sql.rps)}, ck ${(ck.rps / sql.rps).toFixed(2)}x`),
    info('sessions-checkpoint', 'p50 latency (ck / node:http / SQL)', [ck.p50, base.p50, sql.p50].map(fmt.ms).join(' / ')),
    ...(w ? [
      info('sessions-checkpoint', 'commits/s; session rows, timeline rows per commit', `${fmt.rate(w.commits / w.sec)}; ${(w.sessionRows / w.commits).toFixed(2)}, ${(w.rows / w.commits).toFixed(2)}`),
      info('sessions-checkpoint', 'writing transactions/s; WAL flushes/s', `${fmt.rate(w.writes / w.sec)}; ${fmt.rate(w.walSyncs / w.sec)}`),
    ] : []),
    generatorRow('sessions-checkpoint', [['node:http', base], ['ck', ck]]),
    none('sessions-checkpoint', 'not a 201 change', { ck: ck.requests - created, SQL: sql.unchanged }),
    none('sessions-checkpoint', 'failed requests', { ck: ck.failed, 'node:http': base.failed }),
  ];
  const raw = Object.fromEntries(contenders.map((c) => [c.name, c.runs]));
  return { rows, raw: { connections: CONNECTIONS, users: USERS, poolSize: backend.config.poolSize, commits: w, sql, ...raw } };
};
