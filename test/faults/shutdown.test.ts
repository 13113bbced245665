import { request } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyString } from '../../src/auth/keys.js';
import { BACKENDS } from '../helpers.js';
import { newTarget, type Target, withDb } from './database.js';
import { type Acked, expectConsistentTimeline, startLoad, unflushedBeats, userIds } from './load.js';
import { call, type Exit, refusesConnections, startService, stopAll } from './process.js';
import { waitFor } from '../wait.js';

/**
 * A POST whose headers the server has (it answered `100 Continue`, so the request is routed and in flight)
 * and whose body is sent only when `finish()` is called.
 */
async function heldRequest(url: string, key: string, path: string, body: object) {
  const payload = JSON.stringify(body);
  const req = request(url + path, {
    method: 'POST',
    agent: false,
    headers: {
      authorization: `Bearer ${key}`, 'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload), expect: '100-continue',
    },
  });
  req.setTimeout(30_000, () => req.destroy(new Error('no response within 30 s')));
  const response = new Promise<{ status: number; body: any }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
  });
  response.catch(() => {}); // observed by finish()
  const continued = new Promise<void>((resolve, reject) => {
    req.once('continue', resolve);
    response.then((r) => reject(new Error(`answered ${r.status} before the body was sent`)), reject);
  });
  req.flushHeaders();
  await continued;
  return { finish: () => (req.end(payload), response) };
}

function exitWithin(exited: Promise<Exit>, ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the service did not exit within ${ms} ms`)), ms);
  });
  return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
}

describe.each(BACKENDS)('graceful shutdown on SIGTERM (%s)', (backend) => {
  const targets: Target[] = [];
  afterAll(async () => {
    await stopAll();
    for (const t of targets) await t.remove();
  });

  it('stops accepting, completes in-flight requests, flushes buffered heartbeats and exits 0', async () => {
    const target = await newTarget(backend);
    targets.push(target);
    const key = generateKeyString();
    // A long flush interval: acknowledged heartbeats stay buffered until the shutdown flush.
    const svc = await startService({ ...target.env, CK_API_KEY: key, CK_FLUSH_INTERVAL_MS: '10000' });

    const users = userIds('sd-', 15);
    const beat = (u: string) => call(svc.url, key, 'POST', '/heartbeat', { user_id: u });
    const acknowledged = new Map<string, number>();
    for (const round of ['stored', 'buffered']) {
      for (const r of await Promise.all(users.map(beat))) {
        expect(r.status, round).toBe(200);
        acknowledged.set(r.body.user_id, Date.parse(r.body.last_heartbeat));
      }
    }
    const load = startLoad(svc.url, key, userIds('sd-load-', 10), 4);
    const held = await Promise.all([
      ...users.slice(0, 10).map((u) => heldRequest(svc.url, key, '/heartbeat', { user_id: u })),
      ...users.slice(10).map((u) => heldRequest(svc.url, key, '/checkpoints', { user_id: u, state: 'Busy' })),
    ]);
    let replies;
    try {
      await waitFor('some load to be acknowledged', () => load.acked.length >= 5, 30_000);
      svc.child.kill('SIGTERM');
      await waitFor('the port to refuse connections', () => refusesConnections(svc.port), 10_000);
      expect(svc.running()).toBe(true); // still draining the held requests
      replies = await Promise.all(held.map((h) => h.finish()));
    } finally {
      await load.stop();
    }
    // A shutdown that takes over 10 s exits with 1.
    expect(await exitWithin(svc.exited, 15_000)).toEqual({ code: 0, signal: null });

    expect(replies.map((r) => r.status)).toEqual([...Array(10).fill(200), ...Array(5).fill(201)]);
    for (const r of replies.slice(0, 10)) acknowledged.set(r.body.user_id, Date.parse(r.body.last_heartbeat));
    for (const [u, t] of load.beats) acknowledged.set(u, t);
    const acked: Acked[] = [
      ...load.acked, ...replies.slice(10).map((r) => ({ id: r.body.id, user_id: r.body.user_id, state: 'Busy' })),
    ];

    await withDb(target, async (db) => {
      expect(await unflushedBeats(db, acknowledged)).toEqual([]);
      await expectConsistentTimeline(db, acked);
    });
  }, 120_000);
});
