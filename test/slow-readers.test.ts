import { connect, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { BACKENDS, startServer, type TestServer } from './helpers.js';
import { waitFor } from './wait.js';

/** An event-stream client that sends its request and then never reads a byte. */
function nonReader(s: TestServer, path: string, headers: Record<string, string> = {}): Promise<Socket> {
  const { hostname, port } = new URL(s.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.adminKey}\r\n${extra}\r\n`);
      socket.pause(); // never read: the kernel buffers fill, then the server's
      resolve(socket);
    });
    socket.on('error', () => {});
  });
}

/** `count` events of one user with `kb` KiB of content each, written straight into the table. */
async function writeEvents(s: TestServer, user: string, count: number, kb: number): Promise<string> {
  const { rows } = await s.db.query<{ first: string }>(
    `WITH ins AS (
       INSERT INTO checkpoints (user_id, state, ts, content, source)
       SELECT $1, CASE WHEN g % 2 = 0 THEN 'Busy' ELSE 'Away' END, now() - make_interval(secs => $2 - g),
              jsonb_build_object('pad', repeat('x', $3 * 1024)), 'client'
         FROM generate_series(1, $2) g
       RETURNING id)
     SELECT min(id)::text AS first FROM ins`,
    [user, count, kb],
  );
  return rows[0]!.first;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
}

const MB = 1024 * 1024;

/**
 * Memory ck holds: the process's resident set on PostgreSQL; on PGlite the JavaScript heap, because the
 * embedded database's own memory (a WebAssembly heap that grows with the data written and never shrinks)
 * is in the same process.
 */
function held(backend: string): number {
  global.gc?.();
  const m = process.memoryUsage();
  return backend === 'postgres' ? m.rss : m.heapUsed;
}

const connections = (s: TestServer) =>
  new Promise<number>((resolve, reject) => s.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

describe.each(BACKENDS)('clients that do not read (%s)', (backend) => {
  it('an event replay is paged and paced by the client: memory, the pool and other requests are unaffected', async () => {
    const s = await startServer(backend);
    const sockets: Socket[] = [];
    try {
      await s.req('POST', '/heartbeat', { user_id: 'alice' });
      const first = await writeEvents(s, 'replayed', 1500, 16); // 24 MiB of events
      const before = held(backend);
      for (let i = 0; i < 10; i++) sockets.push(await nonReader(s, '/events', { 'Last-Event-ID': String(BigInt(first) - 1n) }));
      await new Promise((r) => setTimeout(r, 3000));
      const status = await timed(() => s.req('GET', '/status/alice'));
      expect(status.value.status).toBe(200);
      expect(status.ms).toBeLessThan(1000);
      expect(s.db.poolStats().waiting).toBe(0);
      // Whole replays held in memory were 10 x 24 MiB, twice over (text and bytes).
      expect(held(backend) - before).toBeLessThan(120 * MB);
    } finally {
      for (const socket of sockets) socket.destroy();
      await s.close();
    }
  }, 60_000);

  it('live clients that stop reading are cut off and their connections closed, not kept with full buffers', async () => {
    const s = await startServer(backend);
    const sockets: Socket[] = [];
    try {
      const before = await connections(s);
      for (let i = 0; i < 20; i++) sockets.push(await nonReader(s, '/events?user_id=live'));
      await waitFor('20 open streams', () => s.app.ck.streams.size === 20);
      const memory = held(backend);
      await writeEvents(s, 'live', 1500, 16);
      await waitFor('every non-reading client cut off', () => s.app.ck.streams.size === 0, 30_000);
      // The server drops their connections (and what sat in its kernel buffers), not just its own state.
      await waitFor('the server to close their connections', async () => (await connections(s)) <= before, 10_000);
      expect(held(backend) - memory).toBeLessThan(150 * MB);
    } finally {
      for (const socket of sockets) socket.destroy();
      await s.close();
    }
  }, 90_000);

  it('a year-long team report streams without blocking the event loop', async () => {
    const s = await startServer(backend);
    try {
      // Users Online a year ago, Offline ever since: 366 days each (PGlite computes slower: fewer there).
      const users = backend === 'postgres' ? 2000 : 1000;
      await s.db.query(
        `WITH u AS (SELECT 'team-' || lpad(g::text, 4, '0') AS id FROM generate_series(1, ${users}) g),
              c AS (INSERT INTO checkpoints (user_id, state, ts, source) SELECT id, 'Online', now() - interval '366 days', 'heartbeat' FROM u)
         INSERT INTO user_sessions (user_id, current_state, state_since, last_heartbeat)
         SELECT id, 'Online', now() - interval '366 days', now() - interval '366 days' FROM u`,
      );
      const to = new Date().toISOString().slice(0, 10);
      const from = new Date(Date.now() - 365 * 86_400_000).toISOString().slice(0, 10);
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      const probes: number[] = [];
      let done = false;
      const probe = (async () => {
        while (!done) {
          probes.push((await timed(() => s.req('GET', '/healthz', undefined, null))).ms);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      // Read as it streams, parsed only afterwards: this process is the server too, and parsing tens of
      // megabytes at once would block the very loop being measured.
      const chunks: Buffer[] = [];
      const res = await fetch(`${s.url}/summaries?from=${from}&to=${to}&tz=UTC&limit=${users}`, { headers: { authorization: `Bearer ${s.adminKey}` } });
      for await (const chunk of res.body!) chunks.push(Buffer.from(chunk));
      done = true;
      await probe;
      delay.disable();
      expect(res.status).toBe(200);
      const report = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      expect(report.users).toHaveLength(users);
      expect(report.users[users - 1].days).toHaveLength(366);
      expect(report.next_cursor).not.toBeNull();
      // Built whole, the report held the loop for seconds (the probe saw /healthz wait 4.7 s). Streamed, the
      // longest stall is a chunk's work plus garbage collection, on a machine shared with other test
      // files. PGlite runs each query on this same thread, so a chunk's query blocks it too.
      expect(probes.length).toBeGreaterThan(3);
      expect(Math.max(...probes)).toBeLessThan(1000);
      expect(delay.max / 1e6).toBeLessThan(backend === 'postgres' ? 400 : 1000);
    } finally {
      await s.close();
    }
  }, 120_000);
});
