import type { Metric, Registry } from 'prom-client';

interface Series {
  labels: { method: string; route: string; status_code: number };
  /** Observations per bucket (not cumulative); the last slot is above every bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

type Value = { metricName?: string; labels: Record<string, string | number>; value: number };

/**
 * `ck_http_requests_total` and `ck_http_request_duration_seconds`, kept in plain arrays and handed to the
 * prom-client registry as two metrics it renders like its own. prom-client's labelled Counter and
 * Histogram validate and hash the label object on every call; at heartbeat rates that cost about 7% of
 * throughput (measured A/B, docs/performance.md). Here an observation is three Map lookups and two
 * increments, and the scrape output is the same.
 */
export class RequestMetrics {
  // route -> method -> status: no key string is built per request.
  private readonly series = new Map<string, Map<string, Map<number, Series>>>();
  /** Every series, in the order first seen (prom-client's order). */
  private all: Series[] = [];

  constructor(registry: Registry, private readonly buckets: readonly number[]) {
    const metric = (name: string, help: string, type: 'counter' | 'histogram', values: () => Value[]) => ({
      name, help, type, aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => {
        this.series.clear();
        this.all = [];
      },
    });
    const requests = metric('ck_http_requests_total', 'HTTP requests answered, by method, route pattern and status code', 'counter',
      () => this.all.map((s) => ({ labels: s.labels, value: s.count })));
    const duration = metric('ck_http_request_duration_seconds', 'HTTP request latency, by method, route pattern and status code', 'histogram',
      () => this.all.flatMap((s) => this.histogram(s)));
    // Duck-typed: the registry only calls get() and reset() and reads name, help, type and aggregator.
    registry.registerMetric(requests as unknown as Metric);
    registry.registerMetric(duration as unknown as Metric);
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) this.series.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let s = byStatus.get(status);
    if (!s) {
      s = { labels: { method, route, status_code: status }, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      byStatus.set(status, s);
      this.all.push(s);
    }
    let i = 0;
    while (i < this.buckets.length && seconds > this.buckets[i]!) i++;
    s.counts[i]!++;
    s.sum += seconds;
    s.count++;
  }

  /** One series as Prometheus histogram samples: cumulative buckets, +Inf, sum and count. */
  private histogram(s: Series): Value[] {
    const out: Value[] = [];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += s.counts[i]!;
      out.push({ metricName: 'ck_http_request_duration_seconds_bucket', labels: { le, ...s.labels }, value: cumulative });
    });
    out.push({ metricName: 'ck_http_request_duration_seconds_bucket', labels: { le: '+Inf', ...s.labels }, value: s.count });
    out.push({ metricName: 'ck_http_request_duration_seconds_sum', labels: s.labels, value: s.sum });
    out.push({ metricName: 'ck_http_request_duration_seconds_count', labels: s.labels, value: s.count });
    return out;
  }
}
