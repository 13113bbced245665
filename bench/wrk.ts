import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLOCK_TICKS, cpuMeter } from './proc.js';

/**
 * HTTP load from wrk (C, one thread): closed loop, `connections` requests in flight. A Lua script in
 * bench/lua/ builds each request (bench/lua/common.lua counts statuses and prints the result as JSON),
 * so the generator spends its CPU on sending. wrk's own CPU is reported beside every figure.
 */

const LUA = fileURLToPath(new URL('./lua/', import.meta.url));

export interface LoadResult {
  /** Successful (2xx) responses per second. */
  rps: number;
  /** Latencies in ms. */
  p50: number;
  p99: number;
  max: number;
  requests: number;
  /** Non-2xx responses, socket errors and timeouts. */
  failed: number;
  statuses: Record<string, number>;
  /** wrk's CPU (user + system) over the run, % of one core: near 100% means the generator was the limit. */
  generatorCpu: number;
  /** The server's CPU over the same run, % of one core (NaN when no pid was given). */
  serverCpu: number;
}

export interface HttpLoad {
  url: string;
  connections: number;
  durationSec: number;
  /** Untimed run first (a wrk of its own), so the JIT and caches are warm. */
  warmupSec?: number;
  /** Called between the warm-up and the measured run (e.g. to read counters). */
  beforeMeasure?: () => Promise<void>;
  /** Script in bench/lua/, e.g. `rotate.lua`. */
  script: string;
  /**
   * The script's arguments for the `run`-th wrk of this bench (numbered across every call, so a run can
   * use user ids no earlier run used). The API key is appended; the baselines ignore it.
   */
  args: (run: number) => string[];
  key: string;
  /** The server's pid, for its CPU. */
  serverPid?: number;
}

/** Requests that take longer count as timeouts (wrk's default, 2 s, would hide a slow tail). */
const TIMEOUT = '10s';
let runs = 0;

/** Fails with the install command when wrk is missing. */
export function requireWrk(): void {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  if (r.error) throw new Error('wrk is not installed: `apt-get install -y wrk` (the bench drives HTTP with it)');
}

interface WrkJson {
  duration_us: number;
  requests: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  errors: { connect: number; read: number; write: number; timeout: number };
  cpu_ticks: number;
  statuses: Record<string, number>;
}

async function once(o: HttpLoad, durationSec: number): Promise<LoadResult> {
  const args = [
    '-t1', `-c${o.connections}`, `-d${Math.max(1, Math.round(durationSec))}s`, '--timeout', TIMEOUT,
    '-s', LUA + o.script, o.url, '--', ...o.args(runs++), o.key,
  ];
  const server = o.serverPid ? cpuMeter(o.serverPid) : () => NaN;
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const serverCpu = server();
  const line = /^WRK_JSON (.*)$/m.exec(out)?.[1];
  if (code !== 0 || !line) throw new Error(`wrk ${args.join(' ')} exited with ${code}: ${(err || out).trim().slice(-500)}`);
  const w = JSON.parse(line) as WrkJson;
  const sec = w.duration_us / 1e6;
  const ok = Object.entries(w.statuses).reduce((a, [k, v]) => (k.startsWith('2') ? a + v : a), 0);
  const e = w.errors;
  return {
    rps: ok / sec,
    p50: w.p50_us / 1000,
    p99: w.p99_us / 1000,
    max: w.max_us / 1000,
    requests: w.requests,
    failed: w.requests - ok + e.connect + e.read + e.write + e.timeout,
    statuses: w.statuses,
    generatorCpu: (100 * w.cpu_ticks) / CLOCK_TICKS / sec,
    serverCpu,
  };
}

/** Drives an HTTP endpoint with wrk; a warm-up run first when asked. */
export async function httpLoad(o: HttpLoad): Promise<LoadResult> {
  if (o.warmupSec) await once(o, o.warmupSec);
  await o.beforeMeasure?.();
  return once(o, o.durationSec);
}
