// An in-memory stand-in for ck behind a fetch function: records every request, answers like the server,
// and lets a test take it down, script failures, or drive an event stream.
import type { ServerConfig } from '../../src/types.js';

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: any;
  at: number;
  keepalive?: boolean;
}

type Override = { path: string; status: number; headers?: Record<string, string>; body?: unknown };

export const json = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), {
    status, headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers },
  });

const problem = (status: number, detail: string) => ({ type: 'about:blank', title: String(status), status, detail });

export class FakeCk {
  calls: Call[] = [];
  /** Network down: every fetch rejects like an unreachable host. */
  down = false;
  /** Milliseconds every answer takes. */
  delay = 0;
  /** Whether GET /config exists (a server with sessions). */
  sessions = true;
  config: ServerConfig = { heartbeat_timeout: 60, idle_timeout: 300, max_backfill: 604_800 };
  tokens = new Set(['good']);
  /** Answers consumed in order before the normal handler, for matching paths. */
  overrides: Override[] = [];
  /** Open event streams; push SSE text with `emit`. */
  streams: { controller: ReadableStreamDefaultController<Uint8Array>; call: Call }[] = [];
  /** Checkpoints stored, in arrival order. */
  stored: any[] = [];
  private since?: string;

  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input), 'http://ck.test');
    const headers = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const call: Call = {
      method: init.method ?? 'GET', path: url.pathname, query: url.searchParams, headers,
      body: init.body ? JSON.parse(String(init.body)) : undefined, at: Date.now(), keepalive: init.keepalive,
    };
    this.calls.push(call);
    if (this.delay) await new Promise((r) => setTimeout(r, this.delay));
    if (init.signal?.aborted) throw new DOMException('aborted', 'AbortError');
    if (this.down) throw new TypeError('fetch failed');
    const i = this.overrides.findIndex((o) => o.path === call.path);
    if (i >= 0) {
      const [o] = this.overrides.splice(i, 1);
      return json(o!.status, o!.body ?? problem(o!.status, 'scripted'), o!.headers);
    }
    if (!this.tokens.has(headers.authorization?.replace(/^Bearer /, '') ?? '')) return json(401, problem(401, 'unknown key'));
    return this.handle(call, init.signal ?? undefined);
  };

  private handle(c: Call, signal?: AbortSignal): Response {
    const now = new Date(Date.now()).toISOString();
    const key = `${c.method} ${c.path}`;
    if (key === 'GET /config') return this.sessions ? json(200, this.config) : json(404, problem(404, 'no route'));
    if (key === 'POST /heartbeat') {
      this.since ??= now;
      return json(200, { user_id: c.body.user_id, state: 'Online', online: true, state_since: this.since, last_heartbeat: now });
    }
    if (key === 'POST /checkpoints') {
      this.stored.push(c.body);
      return json(201, { id: String(this.stored.length), changed: true, ...c.body, timestamp: now });
    }
    if (c.method === 'DELETE' && /^\/users\/[^/]+\/(sessions\/[^/]+|presence)$/.test(c.path)) return new Response(null, { status: 204 });
    if (c.method === 'PUT' && /^\/users\/[^/]+\/presence$/.test(c.path)) {
      return json(200, { user_id: 'u', state: c.body.state, online: true, state_since: now, last_heartbeat: now, manual: { state: c.body.state, until: c.body.until ?? null } });
    }
    if (key === 'GET /events') {
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          this.streams.push({ controller, call: c });
          signal?.addEventListener('abort', () => {
            try {
              controller.error(new DOMException('aborted', 'AbortError'));
            } catch {
              // already closed
            }
          });
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    }
    return json(404, problem(404, `no route ${key}`));
  }

  /** Sends SSE text on the newest stream. */
  emit(text: string): void {
    this.streams.at(-1)!.controller.enqueue(new TextEncoder().encode(text));
  }

  /** Ends the newest stream from the server side. */
  drop(): void {
    this.streams.at(-1)!.controller.close();
  }

  of(method: string, path: string): Call[] {
    return this.calls.filter((c) => c.method === method && c.path === path);
  }
}

/** A Storage in memory. */
export class MemoryStorage {
  map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
}

/** Lets pending promise callbacks run (fake timers do not advance microtasks by themselves). */
export const flush = async (n = 20) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};
