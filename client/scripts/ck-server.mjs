// Starts the ck server built at the repository root (`npm run build` there) as a child process on embedded
// PGlite. Shared by gen-types.mjs and the integration and e2e tests, so "how to run ck" has one owner.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/ck.js');

/** True when the root server is built (`dist/cli/main.js` exists). */
export const serverBuilt = () => existsSync(join(ROOT, 'dist/cli/main.js'));

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A well-formed admin key for CK_API_KEY (`ck keys generate`). */
export async function generateKey() {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'generate'], { cwd: ROOT });
  return stdout.trim();
}

/**
 * Runs `node bin/ck.js serve` until `stop()`. `restart()` starts it again on the same port and data dir.
 * @param {{ env?: Record<string, string>, dataDir?: string, port?: number, apiKey?: string }} [opts]
 */
export async function startCk(opts = {}) {
  if (!serverBuilt()) throw new Error(`ck is not built: run \`npm run build\` in ${ROOT}`);
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'ck-client-')));
  const ownDir = !opts.dataDir;
  const port = opts.port ?? (await freePort());
  const apiKey = opts.apiKey ?? (await generateKey());
  const url = `http://127.0.0.1:${port}`;
  const env = { ...process.env, CK_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', CK_API_KEY: apiKey, LOG_LEVEL: 'warn', ...opts.env };
  delete env.DATABASE_URL;

  let child;
  let output = '';
  const launch = async () => {
    output = '';
    child = spawn(process.execPath, [CLI, 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 100))]);
      if (code !== undefined) throw new Error(`ck exited with ${code} before it was ready:\n${output}`);
      try {
        if ((await fetch(`${url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`ck was not ready within 60 s:\n${output}`);
    }
  };
  const halt = () => new Promise((resolve) => {
    const proc = child; // this process, not whichever a later restart() starts
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    // A clean shutdown flushes buffers; a stuck one is killed.
    const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
  await launch();
  return {
    url, port, apiKey, dataDir,
    /** Recent server output, for failure messages. */
    output: () => output,
    /** fetch with the admin key; JSON in, parsed JSON out (undefined for empty bodies). */
    async req(method, path, body, key = apiKey) {
      const headers = { authorization: `Bearer ${key}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    /** Stops the server (SIGTERM); the data dir stays. */
    stop: halt,
    /** Stops it, then starts it again on the same port and data dir. */
    async restart() {
      await halt();
      await launch();
    },
    /** Stops it and removes a data dir this call created. */
    async close() {
      await halt();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
