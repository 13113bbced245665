export interface LoopResult {
  rps: number;
  p50: number;
  p99: number;
  ops: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

/**
 * `concurrency` async workers calling `op(worker, i)` back to back for `durationSec`: the same closed
 * loop as wrk's, without HTTP. `i` counts each worker's calls across warm-up and measurement.
 */
export async function closedLoop(
  concurrency: number, durationSec: number, warmupSec: number, op: (worker: number, i: number) => Promise<void>,
): Promise<LoopResult> {
  const counters = new Array<number>(concurrency).fill(0);
  const phase = async (sec: number) => {
    const latencies: number[] = [];
    const end = performance.now() + sec * 1000;
    const started = performance.now();
    await Promise.all(counters.map(async (_, w) => {
      while (performance.now() < end) {
        const t = performance.now();
        await op(w, counters[w]!++);
        latencies.push(performance.now() - t);
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return { rps: latencies.length / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), ops: latencies.length };
  };
  if (warmupSec) await phase(warmupSec);
  return phase(durationSec);
}

/** JSON requests to the service with its admin key. */
export function client(url: string, key: string) {
  return async function call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return (text.startsWith('{') ? JSON.parse(text) : text) as T;
  };
}

/** Sends every user one heartbeat through POST /heartbeats, `perRequest` users a request. */
export async function beatAll(url: string, key: string, users: string[], perRequest = 1000, concurrency = 4): Promise<void> {
  const call = client(url, key);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < users.length) {
      const part = users.slice(next, next + perRequest);
      next += perRequest;
      await call('POST', '/heartbeats', { user_ids: part });
    }
  }));
}

export interface FastPathCounters {
  /** Heartbeats acknowledged from memory (ck_heartbeats_coalesced_total). */
  coalesced: number;
  /** 200s answered on `route` (ck_http_requests_total). */
  answered: number;
}

/** The service's fast-path counters from /metrics; compare two readings to get a run's share. */
export async function fastPathCounters(url: string, key: string, route: string): Promise<FastPathCounters> {
  const text = await client(url, key)<string>('GET', '/metrics');
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    coalesced: value(/^ck_heartbeats_coalesced_total\s+(\S+)/m),
    answered: value(new RegExp(`^ck_http_requests_total\\{[^}]*route="${route}",status_code="200"\\}\\s+(\\S+)`, 'm')),
  };
}

/**
 * Share of heartbeats answered from memory between two readings, at least. The requests in flight when
 * a wrk run stops are coalesced but never answered: `unanswered` (connections x runs) bounds them.
 */
export const fastPathShare = (a: FastPathCounters, b: FastPathCounters, perRequest = 1, unanswered = 0) =>
  (b.coalesced - a.coalesced) / ((b.answered - a.answered + unanswered) * perRequest);

/** Runs `fn` and returns its value with the wall time it took in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

export const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 0.5);
