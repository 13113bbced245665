import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { startJobs } from '../src/jobs/start.js';
import { RequestMetrics } from '../src/request-metrics.js';
import { aggregateSummaries } from '../src/summaries/sql.js';
import { BACKENDS, ManualClock, startServer, type TestServer, timeoutsOf } from './helpers.js';
import { waitFor } from './wait.js';

// Prometheus text exposition 0.0.4: comments, or `name{label="value",...} number` (NaN and Inf in any case,
// as Prometheus parses them with Go's ParseFloat; prom-client prints "Nan").
const HELP = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?\d+)?|[Nn]a[Nn]|[+-][Ii]nf)$/;

/** The value of one sample, matched by name and exact label set (in any order); undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '{}').slice(1, -1).split(',').filter(Boolean).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

describe.each(BACKENDS)('GET /metrics (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    // Long flush interval and timeout: only the test's own flush() writes buffered heartbeats. The dead
    // webhook endpoint is on 127.0.0.1, a private destination.
    const env = {
      CK_SCHEDULER: 'app', CK_SWEEP_INTERVAL: '1', CK_HEARTBEAT_TIMEOUT: '3600', CK_FLUSH_INTERVAL_MS: '60000',
      CK_WEBHOOK_ALLOW_PRIVATE: 'true',
    };
    s = await startServer(backend, { clock, env });
  });
  afterAll(() => s.close());

  const scrape = async () => {
    const r = await s.req('GET', '/metrics');
    expect(r.status).toBe(200);
    return r.body as string;
  };

  it('needs a key with the read scope', async () => {
    expect((await s.req('GET', '/metrics', undefined, null)).status).toBe(401);
    expect((await s.req('GET', '/metrics', undefined, await s.key(['ingest']))).status).toBe(403);
    const r = await s.req('GET', '/metrics', undefined, await s.key(['read']));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('counts heartbeats from memory, buffered and flushed', async () => {
    // First heartbeats are written at once; repeats within the window are acknowledged from memory.
    await s.req('POST', '/heartbeats', { user_ids: ['m1', 'm2', 'm3'] });
    clock.advance(1000);
    await s.req('POST', '/heartbeats', { user_ids: ['m1', 'm2', 'm3'] });
    await s.req('POST', '/heartbeat', { user_id: 'm1' });
    const before = await scrape();
    expect(sample(before, 'ck_heartbeats_coalesced_total')).toBe(4);
    expect(sample(before, 'ck_heartbeats_pending')).toBe(3);

    await s.app.ck.coalescer.flush();
    const after = await scrape();
    expect(sample(after, 'ck_heartbeats_coalesced_total')).toBe(4);
    expect(sample(after, 'ck_heartbeats_pending')).toBe(0);
    expect(sample(after, 'ck_heartbeats_flushed_total')).toBe(3);
    expect(sample(after, 'ck_heartbeat_flush_duration_seconds_count')).toBe(1);
    expect(sample(after, 'ck_heartbeat_flush_duration_seconds_bucket', { le: '+Inf' })).toBe(1);
  });

  it('labels HTTP requests by route pattern, never the raw URL', async () => {
    await s.req('GET', '/status/m1');
    await s.req('GET', '/status/m2');
    await s.req('GET', '/status/nobody');
    await s.req('GET', '/no/such/route');
    const text = await scrape();
    const status = (code: string) => ({ method: 'GET', route: '/status/:user_id', status_code: code });
    expect(sample(text, 'ck_http_requests_total', status('200'))).toBe(2);
    expect(sample(text, 'ck_http_requests_total', status('404'))).toBe(1);
    expect(sample(text, 'ck_http_request_duration_seconds_count', status('200'))).toBe(2);
    expect(sample(text, 'ck_http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' })).toBe(1);
    expect(sample(text, 'ck_http_requests_total', { method: 'POST', route: '/heartbeats', status_code: '200' })).toBe(2);
    expect(text).not.toMatch(/route="\/status\/m1"/);
    expect(text).not.toMatch(/route="\/no\/such/);
  });

  it('is valid Prometheus text with the pool and process metrics', async () => {
    const text = await scrape();
    const lines = text.split('\n').filter((l) => l !== '');
    for (const line of lines) expect(line.startsWith('#') ? HELP.test(line) : SAMPLE.test(line), line).toBe(true);
    expect(text).toMatch(/^# TYPE ck_http_requests_total counter$/m);
    expect(text).toMatch(/^# TYPE ck_http_request_duration_seconds histogram$/m);
    expect(sample(text, 'ck_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'ck_db_pool_connections', { state: 'waiting' })).toBe(0);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it('ck_sse_clients counts the open event streams', async () => {
    expect(sample(await scrape(), 'ck_sse_clients')).toBe(0);
    const streams = [new AbortController(), new AbortController()];
    for (const c of streams) {
      const res = await fetch(`${s.url}/events`, { headers: { authorization: `Bearer ${s.adminKey}` }, signal: c.signal });
      expect(res.status).toBe(200);
    }
    expect(sample(await scrape(), 'ck_sse_clients')).toBe(2);
    streams[0]!.abort();
    await waitFor('a closed stream to be counted out', async () => sample(await scrape(), 'ck_sse_clients') === 1);
    streams[1]!.abort();
    await waitFor('no open stream', async () => sample(await scrape(), 'ck_sse_clients') === 0);
  });

  it('ck_webhook_backlog counts deliveries waiting for a dead endpoint', async () => {
    // Nothing listens on port 9 (discard): every attempt fails and the deliveries stay pending.
    const hook = await s.req('POST', '/webhooks', { url: 'http://127.0.0.1:9/hook', user_ids: ['wb1', 'wb2'] });
    expect(hook.status).toBe(201);
    try {
      expect(sample(await scrape(), 'ck_webhook_backlog')).toBe(0);
      for (const [user, state] of [['wb1', 'Busy'], ['wb1', 'Away'], ['wb2', 'Busy']]) {
        expect((await s.req('POST', '/checkpoints', { user_id: user, state })).status).toBe(201);
      }
      expect(sample(await scrape(), 'ck_webhook_backlog')).toBe(3);
    } finally {
      await s.req('DELETE', `/webhooks/${hook.body.id}`);
    }
    expect(sample(await scrape(), 'ck_webhook_backlog')).toBe(0);
  });

  it('ck_aggregation_lag_seconds grows while summaries are not aggregated and falls back when they are', async () => {
    expect(sample(await scrape(), 'ck_aggregation_lag_seconds')).toBeLessThan(60);
    // A back-filled state change two hours ago makes that user's days due since then.
    const r = await s.req('POST', '/checkpoints', { user_id: 'lag1', state: 'Busy', timestamp: clock.now() - 7_200_000 });
    expect(r.status).toBe(201);
    expect(sample(await scrape(), 'ck_aggregation_lag_seconds')).toBe(7200);
    clock.advance(60_000);
    expect(sample(await scrape(), 'ck_aggregation_lag_seconds')).toBe(7260);
    await aggregateSummaries(s.db, clock.now(), timeoutsOf(3600));
    expect(sample(await scrape(), 'ck_aggregation_lag_seconds')).toBe(0);
  });

  it('times the sweep and counts the users it expired', async () => {
    const jobs = await startJobs(s.app.ck, { warn: () => {} });
    try {
      await s.req('POST', '/heartbeats', { user_ids: ['exp1', 'exp2'] });
      await s.app.ck.coalescer.flush();
      const { rows } = await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM user_sessions WHERE current_state <> 'Offline'`);
      const alive = rows[0]!.n;
      expect(alive).toBeGreaterThanOrEqual(5);
      clock.advance(2 * 3600_000); // everyone is now past the one-hour timeout
      const text = await waitFor('a sweep that expired everyone alive (m1, m2, m3, exp1, exp2, ...)', async () => {
        const t = await scrape();
        return (sample(t, 'ck_job_items_total', { job: 'sweep', item: 'users_settled' }) ?? 0) >= alive ? t : undefined;
      }, 20_000);
      expect(sample(text, 'ck_job_items_total', { job: 'sweep', item: 'users_settled' })).toBe(alive);
      expect(sample(text, 'ck_job_duration_seconds_count', { job: 'sweep' })).toBeGreaterThanOrEqual(1);
    } finally {
      await jobs.stop();
    }
  });

  it('keeps each app instance in its own registry; a failing scrape hook does not fail the scrape', async () => {
    const other = await startServer(backend);
    try {
      const r = await other.req('GET', '/metrics');
      expect(sample(r.body, 'ck_heartbeats_flushed_total')).toBe(0);
      expect(sample(r.body, 'ck_http_requests_total', { method: 'GET', route: '/status/:user_id', status_code: '200' })).toBeUndefined();
      other.app.ck.metrics.onScrape(() => {
        throw new Error('backlog query failed');
      });
      const again = await other.req('GET', '/metrics');
      expect(again.status).toBe(200);
      expect(sample(again.body, 'ck_heartbeats_pending')).toBe(0);
    } finally {
      await other.close();
    }
    expect(sample(await scrape(), 'ck_heartbeats_flushed_total')).toBe(3);
  });
});

describe('request metrics', () => {
  it('expose exactly what prom-client\'s labelled Counter and Histogram would', async () => {
    const buckets = [0.001, 0.0025, 0.005, 0.01];
    const ours = new Registry();
    const theirs = new Registry();
    const labelNames = ['method', 'route', 'status_code'] as const;
    const counter = new Counter({ name: 'ck_http_requests_total', help: 'HTTP requests answered, by method, route pattern and status code', labelNames, registers: [theirs] });
    const histogram = new Histogram({ name: 'ck_http_request_duration_seconds', help: 'HTTP request latency, by method, route pattern and status code', labelNames, buckets, registers: [theirs] });
    const metrics = new RequestMetrics(ours, buckets);
    // On a bound, between bounds, above all of them; series interleaved.
    const seen: [string, string, number, number][] = [
      ['POST', '/heartbeat', 200, 0.0004], ['GET', '/status/:user_id', 404, 0.01], ['POST', '/heartbeat', 200, 0.001],
      ['POST', '/heartbeat', 422, 0.003], ['POST', '/heartbeat', 200, 2.5], ['GET', 'unmatched', 404, 0.0025],
    ];
    for (const [method, route, status, seconds] of seen) {
      counter.inc({ method, route, status_code: status });
      histogram.observe({ method, route, status_code: status }, seconds);
      metrics.observe(method, route, status, seconds);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    ours.resetMetrics();
    expect(await ours.metrics()).not.toMatch(/^ck_http/m);
  });
});
