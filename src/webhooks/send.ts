import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { type Destination, DestinationRefused, resolveDestination } from './destination.js';
import { type EventRow, toEvent } from '../events/event.js';
import { signedHeaders } from './signature.js';

/** A webhook body: Standard Webhooks' envelope around the event. */
export interface Envelope {
  /** `user.state_changed`, or `webhook.test` for a ping. */
  type: string;
  /** When the event happened, ISO 8601. */
  timestamp: string;
  data: unknown;
}

/** The envelope of a state change; `timestamp` is when it happened. */
export function stateChanged(event: EventRow): Envelope {
  const data = toEvent(event);
  return { type: 'user.state_changed', timestamp: data.timestamp, data };
}

export interface Attempt {
  url: string;
  /** Every secret to sign with (rotation: the new one first). */
  secrets: string[];
  /** `webhook-id`: stable across retries so receivers can de-duplicate. */
  id: string;
  envelope: Envelope;
  timeoutMs: number;
  allowPrivate: boolean;
  /** Unix ms now, for `webhook-timestamp`. */
  nowMs: number;
  /** Aborts the attempt (the worker is stopping). */
  stop?: AbortSignal;
}

export interface AttemptOutcome {
  /** 2xx. */
  ok: boolean;
  /** HTTP status, when the receiver answered. */
  code: number | null;
  error: string | null;
  /** The `stop` signal ended it: not an attempt to count. */
  stopped: boolean;
}

/**
 * One delivery attempt: checks the destination (SSRF rules), connects to the address it checked, POSTs
 * the signed envelope and waits for the response headers, at most `timeoutMs` in all. Never follows a
 * redirect (a 3xx is a failed attempt). Never throws.
 */
export async function sendAttempt(a: Attempt): Promise<AttemptOutcome> {
  const body = JSON.stringify(a.envelope);
  // The attempt's own controller and timer. The timer is referenced until the attempt ends, so no
  // garbage collection can cancel it (a signal from AbortSignal.any over AbortSignal.timeout can be
  // collected while the request waits, and then never fires: a receiver that never answers would hold
  // the slot forever). Stopping the worker aborts it too.
  const attempt = new AbortController();
  const timer = setTimeout(() => attempt.abort(new AttemptTimeout(a.timeoutMs)), a.timeoutMs);
  const stop = () => attempt.abort(a.stop?.reason ?? new Error('stopped'));
  a.stop?.addEventListener('abort', stop, { once: true });
  if (a.stop?.aborted) stop();
  try {
    const url = new URL(a.url);
    const dest = await abortable(resolveDestination(url, a.allowPrivate), attempt.signal);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'ck-webhooks',
      ...signedHeaders(a.secrets, a.id, Math.floor(a.nowMs / 1000), body),
    };
    const code = await post(url, dest, headers, body, attempt.signal);
    return { ok: code >= 200 && code < 300, code, error: null, stopped: false };
  } catch (err) {
    const stopped = !!a.stop?.aborted;
    return { ok: false, code: null, error: describe(attempt.signal.reason ?? err), stopped };
  } finally {
    clearTimeout(timer);
    a.stop?.removeEventListener('abort', stop);
  }
}

/** POSTs to an address of `dest` (never resolving the host again) and answers the status; the body is not read. */
function post(url: URL, dest: Destination, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number> {
  // Node asks for every address when it may try several (happy eyeballs): the checked ones, and no others.
  const pinned = ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts.all) cb(null, dest);
    else cb(null, dest[0]!.address, dest[0]!.family);
  }) as unknown as LookupFunction;
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      // Reused connections save round trips through a busy event loop. A new one goes to the address
      // just checked; a reused one to an address checked when it was opened.
      agent: url.protocol === 'https:' ? HTTPS_POOL : HTTP_POOL,
      lookup: pinned,
      signal,
    }, (res) => {
      resolve(res.statusCode ?? 0);
      // A short body is read so the connection can be reused; anything else is cut off.
      if (Number(res.headers['content-length'] ?? Infinity) <= 65_536) res.resume();
      else res.destroy();
    });
    req.on('error', reject);
    req.end(body);
  });
}


const HTTP_POOL = new http.Agent({ keepAlive: true, maxFreeSockets: 16 });
const HTTPS_POOL = new https.Agent({ keepAlive: true, maxFreeSockets: 16 });

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

class AttemptTimeout extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms / 1000} s`);
  }
}

function describe(err: unknown): string {
  if (err instanceof AttemptTimeout) return err.message;
  if (err instanceof DestinationRefused) return `destination refused: ${err.message}`;
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  const text = cause ? `${e.message}: ${cause}` : String(e?.message ?? err);
  // Shown by GET /webhooks/:id/deliveries: never the credentials of a URL the message may quote.
  return text.replace(/\/\/[^/@\s]*@/g, '//***@').slice(0, 500);
}
