import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A private PostgreSQL cluster for tests that stop and start the server, so the shared one is never
 * disturbed. Needs the Debian PostgreSQL 15 binaries and root (they run as the `postgres` user).
 */

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export const canRunPrivateCluster = existsSync(`${BIN}/initdb`) && process.getuid?.() === 0;

/**
 * A free port below the kernel's ephemeral range: while the server is stopped, no `listen(0)` (another
 * test's service) and no outgoing connection can take it, so it can start again on the same port.
 */
async function stablePort(): Promise<number> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * Math.max(1000, low - 20_000));
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

const asPostgres = (cmd: string, args: string[]) =>
  run('runuser', ['-u', 'postgres', '--', `${BIN}/${cmd}`, ...args], { timeout: 90_000 });

export class PrivateCluster {
  private constructor(readonly dir: string, readonly port: number) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** Connection URL over TCP (what ck uses). */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  static async create(): Promise<PrivateCluster> {
    // Under /tmp, not $TMPDIR: the postgres user must reach it, and socket paths must stay short.
    const dir = await mkdtemp('/tmp/ck-pg-');
    const cluster = new PrivateCluster(dir, await stablePort());
    live.add(cluster);
    try {
      const { stdout: uid } = await run('id', ['-u', 'postgres']);
      const { stdout: gid } = await run('id', ['-g', 'postgres']);
      await chown(dir, Number(uid.trim()), Number(gid.trim()));
      await asPostgres('initdb', [
        '-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync',
      ]);
      await cluster.start();
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    await asPostgres('pg_ctl', ['-D', this.dataDir, '-l', join(this.dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']);
  }

  /** Stops the server (`fast`: sessions are terminated, as in a real restart) and waits until it is down. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await asPostgres('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  /** Stops the server if it runs and deletes its directory. */
  async destroy(): Promise<void> {
    live.delete(this);
    await this.stop('immediate').catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<PrivateCluster>();
// Last resort if the worker dies: never leave a server running.
process.once('exit', () => {
  for (const c of live) {
    try {
      const args = ['-u', 'postgres', '--', `${BIN}/pg_ctl`, '-D', c.dataDir, '-m', 'immediate', 'stop'];
      execFileSync('runuser', args, { stdio: 'ignore' });
    } catch {
      // not running
    }
  }
});
