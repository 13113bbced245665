import { CkError } from './errors.js';
import type { Problem } from './types.js';

export type TokenSource = () => string | Promise<string>;

export interface HttpOptions {
  /** ck's base URL, e.g. `https://ck.example.com`. In browsers it defaults to the page's origin. */
  url?: string;
  /** A bearer token: an API key or a per-user token. */
  token?: string;
  /** Returns a token; called at the first request and once more after a 401. */
  getToken?: TokenSource;
  /** The fetch to use (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  /** Milliseconds to wait for an answer before giving up with a `network` error. Default 10000. */
  timeout?: number;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | string[] | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Return the Response once its headers arrive (event streams); the timeout stops there. */
  stream?: boolean;
  /** Milliseconds; overrides the client's timeout. */
  timeout?: number;
}

/** Seconds or an HTTP date, as milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const ms = /^\d+$/.test(value) ? +value * 1000 : Date.parse(value) - now;
  return Number.isNaN(ms) ? undefined : Math.max(0, ms);
}

/** Builds `base + path + ?query`, repeating array values (`user_id=a&user_id=b`). */
export function urlOf(base: string, path: string, query: RequestOptions['query'] = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return base + path + (s ? `?${s}` : '');
}

/**
 * The one place requests are made: the bearer token, the timeout, the single token refresh on 401 and
 * the translation of failures into CkError.
 */
export class Http {
  readonly base: string;
  private current?: string;
  private refreshing?: Promise<string>;
  private fetcher: typeof fetch;
  private timeout: number;

  constructor(private opts: HttpOptions) {
    this.base = (opts.url ?? (typeof location === 'object' ? location.origin : '')).replace(/\/+$/, '');
    this.current = opts.token;
    this.fetcher = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeout = opts.timeout ?? 10_000;
  }

  /** The token last used or fetched (synchronous, for `pagehide`). */
  get lastToken(): string | undefined {
    return this.current;
  }

  /** The current token, fetching one through getToken the first time. */
  async token(): Promise<string> {
    if (this.current === undefined) await this.refresh(undefined);
    return this.current!;
  }

  /** Asks getToken for a new token, unless someone else already replaced `stale`. One refresh at a time. */
  private refresh(stale: string | undefined): Promise<string> {
    if (this.current !== stale) return Promise.resolve(this.current!);
    const get = this.opts.getToken;
    if (!get) return Promise.reject(new CkError('unauthorized', 'no token: pass `token` or `getToken`', { status: 401 }));
    return (this.refreshing ??= Promise.resolve()
      .then(get)
      .then((t) => (this.current = t))
      .finally(() => (this.refreshing = undefined)));
  }

  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    let token = await this.token();
    let r = await this.send(method, path, token, o);
    if (r.res.status === 401 && this.opts.getToken) {
      // Once: a second 401 with a fresh token is final.
      if (o.stream) void r.res.body?.cancel();
      token = await this.refresh(token);
      r = await this.send(method, path, token, o);
    }
    const { res } = r;
    if (!res.ok) {
      const text = o.stream ? await res.text().catch(() => '') : r.text;
      let problem: Problem | undefined;
      try {
        problem = JSON.parse(text);
      } catch {
        // not problem+json
      }
      const detail = problem?.detail ?? (res.statusText || 'failed');
      throw new CkError(res.status === 401 ? 'unauthorized' : 'http', `${method} ${path}: ${res.status} ${detail}`, {
        status: res.status, problem, retryAfter: parseRetryAfter(res.headers.get('retry-after')),
      });
    }
    if (o.stream) return res as T;
    return (r.text ? JSON.parse(r.text) : undefined) as T;
  }

  /** One fetch; the body is read (except for streams) before the timeout is cleared. */
  private async send(method: string, path: string, token: string, o: RequestOptions): Promise<{ res: Response; text: string }> {
    const ctrl = new AbortController();
    const abort = () => ctrl.abort();
    o.signal?.addEventListener('abort', abort);
    const timer = setTimeout(abort, o.timeout ?? this.timeout);
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json', ...o.headers };
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await this.fetcher(urlOf(this.base, path, o.query), {
        method, headers, signal: ctrl.signal, cache: 'no-store',
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
      });
      return { res, text: o.stream ? '' : await res.text() };
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw new CkError('network', `${method} ${path}: ${ctrl.signal.aborted ? 'timed out' : 'unreachable'}`, { cause: err });
    } finally {
      clearTimeout(timer);
      // A stream's body outlives this call: the caller's signal must still end it.
      if (!o.stream) o.signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * Fire-and-forget with `keepalive`, so it outlives the page (`pagehide`). Uses the last token without
   * waiting for a new one; sendBeacon would be simpler but cannot send Authorization.
   */
  beacon(method: string, path: string): void {
    const token = this.current;
    if (token) this.fetcher(urlOf(this.base, path), { method, keepalive: true, headers: { authorization: `Bearer ${token}` } }).catch(() => {});
  }
}
