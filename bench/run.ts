import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Backend, createBackend } from './backend.js';
import type { BenchContext, Scenario } from './context.js';
import { printTable, type Row, type ScenarioResult, writeResults } from './report.js';
import { batch } from './scenarios/batch.js';
import { checkpoint } from './scenarios/checkpoint.js';
import { cold } from './scenarios/cold.js';
import { fanout } from './scenarios/fanout.js';
import { heartbeat } from './scenarios/heartbeat.js';
import { newUsers } from './scenarios/new-users.js';
import { scale } from './scenarios/scale.js';
import { sessions, sessionsCheckpoint, sessionsNew } from './scenarios/sessions.js';
import { sessionsScale } from './scenarios/sessions-scale.js';
import { killChildren, ROOT } from './service.js';
import { requireWrk } from './wrk.js';

/**
 * `npm run bench`: ck against its baselines, on PostgreSQL when DATABASE_URL is set, else PGlite.
 * Env: BENCH_DURATION (s per HTTP run, default 10), BENCH_SCENARIOS (comma list), BENCH_USERS (1000000).
 * Runs the built service (dist/): `npm run build` first. HTTP load comes from wrk (`apt-get install wrk`).
 */
const SCENARIOS: Record<string, Scenario> = {
  heartbeat, cold, new: newUsers, batch, checkpoint, fanout, scale,
  sessions, 'sessions-new': sessionsNew, 'sessions-checkpoint': sessionsCheckpoint, 'sessions-scale': sessionsScale,
};
/** Scenarios that do not need wrk. */
const NO_WRK = new Set(['scale', 'fanout', 'sessions-scale']);

function positiveInt(name: string, def: number): number {
  const raw = process.env[name];
  const n = raw ? Number(raw) : def;
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

/** Newest file time under `dir`; 0 when it does not exist. */
function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) =>
    e.isDirectory() ? newestMtime(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs));
}

async function main(): Promise<void> {
  const durationSec = positiveInt('BENCH_DURATION', 10);
  const users = positiveInt('BENCH_USERS', 1_000_000);
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const names = (process.env.BENCH_SCENARIOS || Object.keys(SCENARIOS).join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((s) => !SCENARIOS[s]);
  if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  if (names.some((s) => !NO_WRK.has(s))) requireWrk();
  if (newestMtime(join(ROOT, 'src')) > newestMtime(join(ROOT, 'dist'))) {
    throw new Error('dist/ is older than src/: run `npm run build` first (the service runs from dist/)');
  }
  const kind = databaseUrl ? 'postgres' : 'pglite';
  const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
  log(`${kind}, ${durationSec} s per HTTP run, ${users.toLocaleString('en-US')} users, scenarios: ${names.join(', ')}`);

  const results: Record<string, ScenarioResult> = {};
  const rows: Row[] = [];
  for (const name of names) {
    const backends: Backend[] = [];
    const deferred: (() => Promise<void>)[] = [];
    const ctx: BenchContext = {
      durationSec,
      users,
      log,
      defer: (fn) => void deferred.push(fn),
      async backend(label) {
        const b = await createBackend(label, databaseUrl);
        backends.push(b);
        return b;
      },
    };
    const started = performance.now();
    try {
      results[name] = await SCENARIOS[name]!(ctx);
      rows.push(...results[name].rows);
    } catch (err) {
      const cause = (err as Error).cause;
      log(`${name} failed: ${(err as Error).stack ?? err}${cause ? `\ncaused by: ${cause}` : ''}`);
      rows.push({ scenario: name, metric: 'run', value: String((err as Error).message ?? err).slice(0, 80), baseline: '', ratio: '', target: 'completes', result: 'FAIL' });
    } finally {
      for (const fn of deferred.reverse()) await fn().catch((err) => log(`cleanup: ${err}`));
      for (const b of backends) await b.drop().catch((err) => log(`dropping ${JSON.stringify(b.env)}: ${err}`));
    }
    log(`${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  printTable(rows);
  const file = writeResults(kind, { durationSec, users, scenarios: names }, results);
  console.log(`results: ${file}`);
  if (rows.some((r) => r.result === 'FAIL')) process.exitCode = 1;
}

process.once('SIGINT', () => {
  killChildren();
  process.exit(130);
});

main().catch((err) => {
  killChildren();
  console.error(err);
  process.exit(1);
});
