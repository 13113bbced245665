import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  /** The parsed body: `{ type, timestamp, data }`. */
  body: any;
  /** `body.data`: the event. */
  event: any;
  /** What the receiver answered. */
  status: number;
}

/** A real HTTP endpoint that records every request and answers `decide(request)` (default 200). */
export async function startReceiver(decide: (r: Omit<Received, 'status'>) => number = () => 200) {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = JSON.parse(raw);
      const r = { path: req.url ?? '/', headers: req.headers, raw, body, event: body.data };
      const status = decide(r);
      got.push({ ...r, status });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'not now');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    got,
    /** Requests answered 2xx. */
    acked: (path?: string) => got.filter((r) => r.status < 300 && (path === undefined || r.path === path)),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Verifies a delivery with the reference Standard Webhooks library; returns its error message, or null when valid. */
export function rejection(secret: string, r: Pick<Received, 'raw' | 'headers'>): string | null {
  try {
    new Webhook(secret).verify(r.raw, r.headers as Record<string, string>);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Checks the ordering contract on what a receiver saw: per user, an event is only sent once every
 * earlier event of that user was acknowledged; and each event was acknowledged exactly once.
 */
export function assertInOrderExactlyOnce(got: Received[], expectedIdsByUser: Record<string, string[]>): void {
  for (const [user, ids] of Object.entries(expectedIdsByUser)) {
    const mine = got.filter((r) => r.event.user_id === user);
    const acked = new Set<string>();
    for (const r of mine) {
      const pos = ids.indexOf(r.event.id);
      if (pos < 0) throw new Error(`unexpected event ${r.event.id} for ${user}`);
      for (const earlier of ids.slice(0, pos)) {
        if (!acked.has(earlier)) throw new Error(`${user}: event ${r.event.id} sent before ${earlier} was acknowledged`);
      }
      if (r.status < 300) {
        if (acked.has(r.event.id)) throw new Error(`${user}: event ${r.event.id} acknowledged twice`);
        acked.add(r.event.id);
      }
    }
    if (acked.size !== ids.length) throw new Error(`${user}: ${acked.size} of ${ids.length} events acknowledged`);
  }
}
