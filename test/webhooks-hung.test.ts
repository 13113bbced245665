import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BACKENDS, startServer } from './helpers.js';
import { startReceiver } from './webhook-receiver.js';
import { waitFor } from './wait.js';

/** A receiver that accepts TCP connections and never answers (a hung process, a black-holed proxy). */
async function startHungReceiver() {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let accepted = 0;
  server.on('connection', () => accepted++);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hang`,
    accepted: () => accepted,
    open: () => sockets.size,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const gc = (globalThis as { gc?: () => void }).gc;

describe.each(BACKENDS)('a receiver that never answers (%s)', (backend) => {
  it('times out on schedule whatever the garbage collector does, and never holds up another endpoint', async () => {
    expect(gc, 'tests run with --expose-gc (vitest.config.ts)').toBeTypeOf('function');
    const hung = await startHungReceiver();
    const healthy = await startReceiver();
    const s = await startServer(backend, {
      env: { CK_WEBHOOK_TIMEOUT_MS: '1000', CK_WEBHOOK_RETRY_BASE_MS: '60000', CK_WEBHOOK_ALLOW_PRIVATE: 'true' },
    });
    // Collect garbage all along: a timeout that a collection can cancel would never fire.
    const collector = setInterval(() => gc!(), 20);
    try {
      const stuck = (await s.req('POST', '/webhooks', { url: hung.url })).body;
      expect((await s.req('POST', '/webhooks', { url: `${healthy.url}/ok` })).status).toBe(201);
      const users = Array.from({ length: 300 }, (_, i) => `hung-${i}`);
      for (let i = 0; i < users.length; i += 50) {
        const r = await s.req('POST', '/heartbeats', { user_ids: users.slice(i, i + 50) });
        expect(r.status).toBe(200);
      }
      // Every user's first state change reaches the healthy receiver within seconds.
      const started = Date.now();
      // Seconds, not the minutes a hung receiver used to cost (PGlite shares one connection, and CI two cores).
      await waitFor('300 deliveries to the healthy receiver', () => healthy.acked().length >= 300, 45_000);
      expect(Date.now() - started).toBeLessThan(40_000);
      // And the hung endpoint's attempts end at their timeout: recorded as failed attempts, not left hanging.
      const timedOut = await waitFor('timed-out attempts on the hung endpoint', async () => {
        const d = (await s.req('GET', `/webhooks/${stuck.id}/deliveries?limit=1000`)).body.deliveries as any[];
        const failed = d.filter((x) => x.attempts >= 1 && /timed out/.test(x.last_error ?? ''));
        return failed.length >= 20 ? failed : undefined;
      }, 20_000);
      expect(timedOut[0].last_status).toBeNull();
    } finally {
      clearInterval(collector);
      await s.close();
      await hung.close();
      await healthy.close();
    }
  }, 90_000);
});
