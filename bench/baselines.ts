const liveness = (heartbeatSec: number) => ({ heartbeatSec, idleSec: 300 });
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import { recordCheckpoint } from '../src/checkpoints/record.js';
import { loadConfig } from '../src/config.js';
import { openDb } from '../src/db/open.js';
import type { Db } from '../src/db/types.js';
import type { Backend } from './backend.js';
import { closedLoop, type LoopResult } from './load.js';
import { type Proc, startProcess } from './service.js';

/**
 * Baselines measured in the same run as ck:
 * - bare: node:http parsing the same JSON body and answering it (the ceiling of Node's HTTP stack here);
 * - naive: one `UPDATE user_sessions` per heartbeat through ck's driver and pool size;
 * - fastify: an empty Fastify route answering the same body through a response schema (reported for
 *   context: the share of the node:http ceiling the framework itself leaves);
 * - checkpoint ceiling: ck's checkpoint SQL from Node, same pool and concurrency, no HTTP.
 * The servers run as child processes (`node --import tsx bench/baselines.ts bare|naive`), as ck does.
 */

const answer = (res: ServerResponse, userId: unknown) => {
  const now = new Date().toISOString();
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ user_id: userId, state: 'Online', online: true, state_since: now, last_heartbeat: now }));
};

function jsonServer(handle: (body: { user_id?: unknown }, res: ServerResponse) => void | Promise<void>) {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') {
      res.end('ok');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: { user_id?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      Promise.resolve(handle(body, res)).catch(() => res.writeHead(500).end());
    });
  });
}

async function serveFastify(port: number): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ keepAliveTimeout: 10_000 });
  const str = { type: 'string' };
  app.post('/heartbeat', {
    schema: {
      body: { type: 'object', required: ['user_id'], properties: { user_id: str } },
      response: { 200: { type: 'object', properties: { user_id: str, state: str, online: { type: 'boolean' }, state_since: str, last_heartbeat: str } } },
    },
  }, async (req) => {
    const now = new Date().toISOString();
    return { user_id: (req.body as { user_id: string }).user_id, state: 'Online', online: true, state_since: now, last_heartbeat: now };
  });
  app.get('/', async () => 'ok');
  await app.listen({ port, host: '127.0.0.1' });
  process.once('SIGTERM', () => void app.close().finally(() => process.exit(0)));
}

async function serveChild(kind: string): Promise<void> {
  const port = Number(process.env.PORT);
  if (kind === 'fastify') return serveFastify(port);
  let db: Db | undefined;
  const server = kind === 'naive'
    ? jsonServer(async (body, res) => {
      await db!.query('UPDATE user_sessions SET last_heartbeat = now() WHERE user_id = $1', [body.user_id]);
      answer(res, body.user_id);
    })
    : jsonServer((body, res) => answer(res, body.user_id));
  if (kind === 'naive') db = await openDb(loadConfig());
  server.keepAliveTimeout = 10_000;
  server.listen(port, '127.0.0.1');
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void (db?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  });
}

export function startBare(): Promise<Proc> {
  return startProcess('bare', ['--import', 'tsx', 'bench/baselines.ts', 'bare'], {}, '/');
}

export function startFastify(): Promise<Proc> {
  return startProcess('fastify', ['--import', 'tsx', 'bench/baselines.ts', 'fastify'], {}, '/');
}

export function startNaive(backend: Backend): Promise<Proc> {
  return startProcess('naive', ['--import', 'tsx', 'bench/baselines.ts', 'naive'], backend.env, '/');
}

/**
 * `ck_record_checkpoints` for one row at a time (via recordCheckpoint, ck's own call) from `concurrency`
 * workers on one pool. Each worker owns 16 users and alternates their state, so every call is a change.
 */
export async function checkpointCeiling(db: Db, backend: Backend, concurrency: number, durationSec: number): Promise<LoopResult & { unchanged: number }> {
  let unchanged = 0;
  const result = await closedLoop(concurrency, durationSec, 1, async (w, i) => {
    const now = Date.now();
    const r = await recordCheckpoint(db, {
      userId: `sql_${w}_${i % 16}`, state: Math.floor(i / 16) % 2 ? 'Online' : 'Away', ts: now,
    }, now, liveness(backend.config.heartbeatTimeoutSec));
    if (r.status !== 'stored') unchanged++;
  });
  return { ...result, unchanged };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  serveChild(process.argv[2] ?? 'bare').catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
