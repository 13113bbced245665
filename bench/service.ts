import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { generateKeyString } from '../src/auth/keys.js';
import type { Backend } from './backend.js';
import { memoryMb } from './proc.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A server the bench started in its own process, so its CPU and memory are its own. */
export interface Proc {
  url: string;
  pid: number;
  /** Resident set now and its peak (VmHWM), in MB; NaN where /proc is missing. */
  memory(): { rssMb: number; peakMb: number };
  /** SIGTERM, then SIGKILL after 20 s. Safe to call twice. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
const MAX_LINES = 20;

/** Kills the children still running (the bench failed or was interrupted). */
export function killChildren(): void {
  for (const c of running) c.kill('SIGKILL');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `node ...args` with PORT set and waits until `readyPath` answers 200. */
export async function startProcess(label: string, args: string[], env: Record<string, string>, readyPath: string): Promise<Proc> {
  const port = await freePort();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  // The child's warnings, shortened and capped: a failing dependency can log a line per request.
  let lines = 0;
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim() || ++lines > MAX_LINES + 1) continue;
      process.stderr.write(lines > MAX_LINES ? `[${label}] (further output suppressed)\n` : `[${label}] ${line.slice(0, 400)}\n`);
    }
  };
  child.stdout!.on('data', forward);
  child.stderr!.on('data', forward);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child);
    resolve(code);
  }));
  let gone = false;
  void exited.then(() => (gone = true));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (gone) throw new Error(`${label} exited before it was ready`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${label} was not ready within 180 s`);
    }
    const ok = await fetch(url + readyPath).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    memory: () => memoryMb(pid),
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface Service extends Proc {
  /** Admin key (CK_API_KEY) the service was started with. */
  key: string;
}

/**
 * `node bin/ck.js serve` on the backend; the scheduler is off, the bench runs sweep and aggregation itself.
 * Pass the `key` of an earlier run to restart it as it was. BENCH_CPU_PROF=<dir> writes a V8 CPU profile
 * of each service run there (to find where time goes).
 */
export async function startService(backend: Backend, key = generateKeyString()): Promise<Service> {
  if (!existsSync(`${ROOT}/dist/cli/main.js`)) throw new Error('dist/ is missing: run `npm run build` first');
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = await startProcess('ck', [...prof, 'bin/ck.js', 'serve'], {
    ...backend.env, CK_API_KEY: key, CK_SCHEDULER: 'off', LOG_LEVEL: 'warn',
  }, '/readyz');
  return { ...proc, key };
}
