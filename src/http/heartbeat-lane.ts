import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Scope } from '../auth/keys.js';
import type { Status } from '../liveness/status.js';
import { type Principal, refusal } from './auth.js';
import { parseJsonBody } from './json-body.js';
import type { Answered } from './request-hooks.js';
import { LANE_REPRODUCES } from './request-hooks.js';
import { baseHeaders } from './security.js';
import { statusJson } from './status-view.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** What the lane takes from the route it stands in for: the route's own definitions, not copies. */
export interface LaneRoute<B> {
  method: string;
  url: string;
  scope: Scope;
  /** The route's body schema, compiled as the router compiles it. */
  valid: (body: unknown) => body is B;
  /** The route's answer from memory; undefined when the route must do more (a write). */
  fromMemory: (body: B) => Status | undefined;
}

export interface LaneDeps<B> {
  route: LaneRoute<B>;
  /** A credential verified recently, from memory (never a database round trip); undefined otherwise. */
  cachedPrincipal(bearer: string): Principal | undefined;
  requestId(headers: IncomingHttpHeaders): string;
  /** Metrics and the request log line, as the router's onResponse hook records them. */
  answered(a: Answered): void;
}

// Bodies the lane reads: a heartbeat's is far below this.
const MAX_BODY = 1024;
const REPLAY = Symbol('ck.replayBody');
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The heartbeat lane (docs/ingest.md): the common `POST /heartbeat` is answered straight from node:http,
 * without Fastify's router, hooks, validator and serializer (most of a heartbeat's CPU). It is assembled
 * from the route's parts: the same body parser, the route's compiled schema, the route's answer from
 * memory, the one status renderer, the base headers and the same metrics and log line. Every other
 * request goes to Fastify untouched, or, if the lane already read its body, with that body replayed to
 * the route (`replayedBody`).
 */
export class HeartbeatLane<B> {
  /** Requests the lane answered itself. */
  served = 0;
  private open = true;
  // One header object reused: writeHead renders it at once and keeps no reference.
  private readonly headers: Record<string, string | number>;

  constructor(private readonly deps: LaneDeps<B>) {
    this.headers = { ...baseHeaders(''), 'content-type': JSON_TYPE, 'content-length': 0 };
  }

  /** Stops taking requests (the app is closing: Fastify answers them). */
  close(): void {
    this.open = false;
  }

  serve(req: IncomingMessage, res: ServerResponse, next: Handler): void {
    const route = this.deps.route;
    if (!this.open || req.url !== route.url || req.method !== route.method || !this.eligible(req.headers)) {
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

  /** Headers alone: JSON, small, not chunked, not a browser's (CORS), from a cached credential that may use the route. */
  private eligible(h: IncomingHttpHeaders): boolean {
    if (h['content-type'] !== 'application/json' && h['content-type'] !== JSON_TYPE) return false;
    if (h.origin !== undefined || h['transfer-encoding'] !== undefined) return false;
    const length = Number(h['content-length']);
    if (!(length > 0 && length <= MAX_BODY)) return false;
    const auth = h.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ')) return false;
    const principal = this.deps.cachedPrincipal(auth.slice(7));
    // Per-user tokens are the router's: the lane reproduces the key path only.
    return principal !== undefined && principal.userId === undefined && refusal(principal, this.deps.route.scope) === undefined;
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: Buffer, started: number, next: Handler): void {
    const status = this.fromBody(body);
    if (status === undefined) {
      (req as IncomingMessage & { [REPLAY]?: Buffer })[REPLAY] = body;
      next(req, res);
      return;
    }
    const payload = statusJson(status);
    const id = this.deps.requestId(req.headers);
    this.headers['x-request-id'] = id;
    this.headers['content-length'] = Buffer.byteLength(payload);
    res.writeHead(200, this.headers);
    res.end(payload);
    this.served++;
    const { method, url } = this.deps.route;
    this.deps.answered({ reqId: id, method, route: url, url, status: 200, ms: performance.now() - started });
  }

  /** The route's answer for a body the route would accept and can answer from memory; else undefined. */
  private fromBody(body: Buffer): Status | undefined {
    const parsed = parseJsonBody(body);
    if ('error' in parsed || !this.deps.route.valid(parsed.value)) return undefined;
    return this.deps.route.fromMemory(parsed.value);
  }
}

/** The body the lane read from a request it then left to Fastify, as a stream. */
export function replayedBody(req: IncomingMessage): Readable | undefined {
  const body = (req as IncomingMessage & { [REPLAY]?: Buffer })[REPLAY];
  return body && Readable.from([body], { objectMode: false });
}

/** The route's preParsing hook: a request the lane read but left to Fastify gets its body back. */
export function ckReplayLaneBody(req: { raw: IncomingMessage }, _reply: unknown, payload: Readable, done: (err: null, p: Readable) => void) {
  done(null, replayedBody(req.raw) ?? payload);
}

/**
 * Why the lane may not stand in for the route, or undefined when it may: every request-wide hook Fastify
 * runs on the route (read from `printRoutes`, Fastify's own account of them) must be one the lane
 * reproduces (LANE_REPRODUCES). A hook it does not know (rate limits, CORS, anything added later) turns
 * the lane off. Called once the app is ready.
 */
export function laneRefusal(app: FastifyInstance, method: string, url: string): string | undefined {
  const text = app.printRoutes({ method, includeHooks: true, commonPrefix: false } as Parameters<FastifyInstance['printRoutes']>[0]);
  const hooks = new Map<string, string[]>();
  let inRoute = false;
  for (const line of text.split('\n')) {
    const route = /(\S+) \((\w+(?:, \w+)*)\)\s*$/.exec(line);
    if (route) inRoute = route[1] === url && route[2]!.split(', ').includes(method);
    const hook = /• \((\w+)\) (\[.*\])\s*$/.exec(line);
    if (inRoute && hook) hooks.set(hook[1]!, (JSON.parse(hook[2]!) as string[]).map((n) => n.replace(/^(bound )+/, '').replace(/\(\)$/, '')));
  }
  if (!(hooks.get('onRequest') ?? []).includes('ckRequestHeaders')) return `cannot read the hooks of ${method} ${url}`;
  for (const [phase, names] of hooks) {
    const unknown = names.filter((n) => !(LANE_REPRODUCES[phase] ?? []).includes(n));
    if (unknown.length) return `${phase} hook(s) ${unknown.join(', ')} run on ${method} ${url} and the lane does not reproduce them`;
  }
  return undefined;
}
