import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../wait.js';

/** Helpers for fault tests: the real service as a child process (`node bin/ck.js serve`, which runs dist/). */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}bin/ck.js`;

/** A port nobody listens on right now (the OS picks it; the service binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** True when nothing accepts TCP connections on the port any more. */
export function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    sock.setTimeout(2000, () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  running(): boolean;
  /** Recent stdout+stderr, for failure messages. */
  output(): string;
  kill9(): Promise<Exit>;
  /** SIGTERM, then waits for the exit (SIGKILL after `timeoutMs`). */
  terminate(timeoutMs?: number): Promise<Exit>;
}

const children = new Set<Service>();
// Last resort if the worker dies: never leave a service behind.
process.once('exit', () => {
  for (const s of children) if (s.running()) s.child.kill('SIGKILL');
});

// Env the service must not inherit from whoever runs the tests.
const OWN_ENV = /^(CK_|DATABASE_URL$|PORT$|HOST$|LOG_LEVEL$)/;

function spawnService(port: number, env: Record<string, string>): Service {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !OWN_ENV.test(k)));
  const child = spawn(process.execPath, [BIN, 'serve'], {
    cwd: ROOT,
    env: { ...base, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (err) => keep(Buffer.from(`\nspawn error: ${err.message}\n`)));
  let done = false;
  // 'close', not 'exit': by then all its output has been read.
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  const svc: Service = {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    child,
    exited,
    running: () => !done,
    output: () => out,
    async kill9() {
      if (!done) child.kill('SIGKILL');
      return exited;
    },
    async terminate(timeoutMs = 15_000) {
      if (!done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  children.add(svc);
  void exited.then(() => children.delete(svc));
  return svc;
}

/**
 * Starts `ck serve` on a free port with `env` (CK_API_KEY, DATABASE_URL or CK_DATA_DIR, ...) and waits until
 * /readyz answers 200. Retries on another port if the chosen one was taken in between.
 */
export async function startService(env: Record<string, string>, readyTimeoutMs = 60_000): Promise<Service> {
  if (!existsSync(`${ROOT}dist/cli/main.js`)) throw new Error('dist/ is missing: run `npm run build` before the fault tests');
  for (let attempt = 1; ; attempt++) {
    const svc = spawnService(await freePort(), env);
    try {
      const state = await waitFor(`${svc.url}/readyz`, async () => {
        if (!svc.running()) return 'exited';
        const res = await fetch(`${svc.url}/readyz`, { signal: AbortSignal.timeout(5000) });
        await res.body?.cancel();
        return res.status === 200 && 'ready';
      }, readyTimeoutMs, 100);
      if (state === 'exited') throw new Error(`exited with ${JSON.stringify(await svc.exited)}`);
      return svc;
    } catch (err) {
      await svc.kill9();
      if (attempt < 3 && svc.output().includes('EADDRINUSE')) continue;
      throw new Error(`ck serve did not become ready: ${String(err)}\n--- output ---\n${svc.output()}`);
    }
  }
}

/** Kills every service still running (afterAll / finally). */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((s) => s.kill9()));
}

export interface Reply {
  status: number;
  body: any;
  contentType: string;
  /** Milliseconds from send to the full response. */
  ms: number;
}

/** JSON over HTTP with the given key; rejects on network errors and after `timeoutMs` (a hang). */
export async function call(
  url: string, key: string, method: string, path: string, body?: unknown, timeoutMs = 30_000,
): Promise<Reply> {
  const started = Date.now();
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed, contentType: res.headers.get('content-type') ?? '', ms: Date.now() - started };
}
