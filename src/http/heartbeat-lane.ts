import { isUtf8 } from 'node:buffer';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { UserId } from './schemas.js';
import { SECURITY_HEADERS } from './security.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface LaneDeps {
  /** True when the bearer string is an API key verified recently (cached) with the ingest scope. */
  admits(bearer: string): boolean;
  /** The answer (JSON text) from memory for a user the coalescer knows alive; undefined when it needs a write. */
  answer(userId: string): string | undefined;
  requestId(headers: IncomingHttpHeaders): string;
  /** After the response: metrics and the request log, as Fastify's onResponse hook does them. */
  done(requestId: string, ms: number): void;
}

// Bodies the lane reads: `{"user_id": ...}` with a 128-character id is far below this.
const MAX_BODY = 1024;
const USER_ID = new RegExp(UserId.pattern!, 'u');
const REPLAY = Symbol('ck.replayBody');
const JSON_TYPE = 'application/json; charset=utf-8';
// The answer's headers, one object reused: writeHead renders an object it is given into the header block
// at once and keeps no reference, and the object path skips the per-header bookkeeping of an array.
const HEADERS: Record<string, string | number> = { ...SECURITY_HEADERS, 'x-request-id': '', 'content-type': JSON_TYPE, 'content-length': 0 };

/**
 * The heartbeat lane (docs/ingest.md): `POST /heartbeat` from a cached API key for a user the coalescer
 * knows alive is answered straight from node:http, without Fastify's router, hooks, validator and
 * serializer (most of a heartbeat's CPU). It answers exactly what the route would: same status, body
 * and headers, same metrics and log line. Every other request goes to Fastify untouched, or, if the lane
 * already read its body, with that body replayed to the route (`replayedBody`): unknown keys, tokens,
 * anything unusual in the headers or the body, and users whose heartbeat must be written first.
 */
export class HeartbeatLane {
  /** Requests the lane answered itself. */
  served = 0;
  private open = true;

  constructor(private readonly deps: LaneDeps) {}

  /** Stops taking requests (the app is closing: Fastify answers them, with its 503). */
  close(): void {
    this.open = false;
  }

  serve(req: IncomingMessage, res: ServerResponse, next: Handler): void {
    if (!this.open || req.url !== '/heartbeat' || req.method !== 'POST' || !this.eligible(req.headers)) {
      next(req, res);
      return;
    }
    const started = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => this.answer(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), started, next));
    // The client went away mid-body: nobody is left to answer.
    req.on('error', () => res.destroy());
  }

  private eligible(h: IncomingHttpHeaders): boolean {
    if (h['content-type'] !== 'application/json' && h['content-type'] !== JSON_TYPE) return false;
    // A browser's request (CORS headers) and chunked bodies are Fastify's.
    if (h.origin !== undefined || h['transfer-encoding'] !== undefined) return false;
    const length = Number(h['content-length']);
    if (!(length > 0 && length <= MAX_BODY)) return false;
    const auth = h.authorization;
    return auth !== undefined && auth.startsWith('Bearer ') && this.deps.admits(auth.slice(7));
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: Buffer, started: number, next: Handler): void {
    const payload = this.parse(body);
    if (payload === undefined) {
      (req as IncomingMessage & { [REPLAY]?: Buffer })[REPLAY] = body;
      next(req, res);
      return;
    }
    const id = this.deps.requestId(req.headers);
    HEADERS['x-request-id'] = id;
    HEADERS['content-length'] = Buffer.byteLength(payload);
    res.writeHead(200, HEADERS);
    res.end(payload);
    this.served++;
    this.deps.done(id, performance.now() - started);
  }

  /** The answer for a body of exactly `{"user_id": <valid id>}`; undefined leaves the request to the route. */
  private parse(body: Buffer): string | undefined {
    // Invalid UTF-8, a BOM, leading space and prototype keys all get the route's own answer.
    if (body[0] !== 0x7b || !isUtf8(body)) return undefined;
    const text = body.toString('utf8');
    if (text.includes('__proto__') || text.includes('constructor')) return undefined;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const user = parsed.user_id;
    // The route's validation, kept although an invalid id can never be a known user (belt and braces).
    // At most 128 UTF-16 units is at most 128 characters; longer ids are the validator's to judge.
    if (typeof user !== 'string' || user.length === 0 || user.length > 128 || !USER_ID.test(user)) return undefined;
    for (const key in parsed) if (key !== 'user_id') return undefined;
    return this.deps.answer(user);
  }
}

/** The body the lane read from a request it then left to Fastify, as a stream (the route's preParsing). */
export function replayedBody(req: IncomingMessage): Readable | undefined {
  const body = (req as IncomingMessage & { [REPLAY]?: Buffer })[REPLAY];
  return body && Readable.from([body], { objectMode: false });
}

interface ServerOptions {
  keepAliveTimeout: number;
  requestTimeout: number;
  connectionTimeout: number;
}

/**
 * Fastify's `serverFactory`: a node:http server whose requests pass the lane first. The timeouts are set
 * as Fastify sets them on servers it creates. `lane` is read per request: it exists once the app is built.
 */
export function laneServer(handler: Handler, opts: ServerOptions, lane: () => HeartbeatLane | undefined): Server {
  const server = createServer((req, res) => {
    const l = lane();
    if (l) l.serve(req, res, handler);
    else handler(req, res);
  });
  server.keepAliveTimeout = opts.keepAliveTimeout;
  server.requestTimeout = opts.requestTimeout;
  server.setTimeout(opts.connectionTimeout);
  return server;
}
