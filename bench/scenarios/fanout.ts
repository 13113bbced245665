import type { Scenario } from '../context.js';
import { type ChildResult, type ClientProcess, forkClients } from '../fanout/protocol.js';
import { writeChanges } from '../fanout/writer.js';
import { cpuMeter, pct, selfCpuMeter } from '../proc.js';
import { atLeast, below, fmt, info, none, type Row } from '../report.js';
import { GENERATOR_LIMIT } from '../rounds.js';
import { seedOnline, userId } from '../seed.js';
import { startService } from '../service.js';

const WATCHED = 4_900;
const WATCH_ALL = 100;
const PROCESSES = 5;
const RATE = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The p-th percentile of a [value, count] histogram. */
function percentile(hist: [number, number][], p: number): number {
  const sorted = [...hist].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((a, [, n]) => a + n, 0);
  let seen = 0;
  for (const [v, n] of sorted) if ((seen += n) > total * p) return v;
  return NaN;
}

/**
 * 5,000 SSE clients on one ck (GET /events): 4,900 watching one user each, 100 watching everyone, held
 * by 5 child processes (bench/fanout/sse-clients.ts). The bench writes 1,000 state changes a second
 * over the watched users, open loop, for 3 x BENCH_DURATION s (30 s by default): 101 deliveries per
 * change. Every change answered 201 must reach every matching client; latency runs from the moment the
 * 201 arrived to the moment a client read the event (Date.now() in both processes).
 */
export const fanout: Scenario = async (ctx) => {
  const seconds = Math.min(30, 3 * ctx.durationSec);
  const backend = await ctx.backend('fanout');
  const users = Array.from({ length: WATCHED }, (_, i) => userId('f', i + 1));
  const db = await backend.open();
  await seedOnline(db, 'f', WATCHED, Date.now());
  await db.close();
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());

  const children: ClientProcess[] = Array.from({ length: PROCESSES }, forkClients);
  ctx.defer(async () => children.forEach((c) => c.kill()));
  const filters: (string | null)[] = [...users, ...Array<null>(WATCH_ALL).fill(null)];
  ctx.log(`fanout: connecting ${fmt.int(filters.length)} SSE clients from ${PROCESSES} processes`);
  const connected = await Promise.all(children.map((c, k) => c.ask<{ failed: number }>({
    type: 'connect', url: svc.url, key: svc.key, filters: filters.filter((_, i) => i % PROCESSES === k), parallel: 50,
  }, 'connected')));
  const refused = connected.reduce((a, c) => a + c.failed, 0);
  if (refused > 0) throw new Error(`${refused} of ${filters.length} SSE clients could not connect`);

  ctx.log(`fanout: ${fmt.int(RATE)} state changes/s for ${seconds} s`);
  children.forEach((c) => c.tell({ type: 'start' }));
  const server = cpuMeter(svc.pid);
  const writerCpu = selfCpuMeter();
  const t0 = performance.now();
  const w = await writeChanges(svc.url, svc.key, users, RATE, seconds);
  const driverCpu = writerCpu();
  // Deliveries still on their way: wait until every expected one arrived, none for 5 s, or 60 s passed
  // (what has not arrived by then counts as missing).
  const expected = w.created * (WATCH_ALL + 1);
  const giveUp = performance.now() + 60_000;
  let last = -1;
  for (let quiet = 0; quiet < 10 && performance.now() < giveUp;) {
    const counts = await Promise.all(children.map((c) => c.ask<{ deliveries: number }>({ type: 'count' }, 'count')));
    const n = counts.reduce((a, c) => a + c.deliveries, 0);
    if (n >= expected) break;
    quiet = n === last ? quiet + 1 : 0;
    last = n;
    await sleep(500);
  }
  const serverCpu = server();
  const deliverySec = (performance.now() - t0) / 1000; // writer start until the last delivery (±0.5 s)
  const results = await Promise.all(children.map((c) => c.ask<ChildResult>({ type: 'finish', answered: w.answered }, 'result')));
  const memory = svc.memory();
  children.forEach((c) => c.kill());
  await svc.stop();

  const sum = (f: (r: ChildResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const latency = results.flatMap((r) => r.latency);
  const p99 = percentile(latency, 0.99);
  const clientCpu = results.map((r) => r.cpu);
  const headroom = below('fanout', 'CPU, % of one core: SSE client processes', Math.max(...clientCpu), GENERATOR_LIMIT, pct);
  headroom.value = `${clientCpu.map(pct).join(', ')}; writer ${pct(driverCpu)}; ck ${pct(serverCpu)}`;
  const rows: Row[] = [
    none('fanout', 'deliveries missing (of each 201 to each matching client)', {
      missing: sum((r) => r.missing), duplicate: sum((r) => r.duplicate), 'clients short': sum((r) => r.short),
      'wrong user': sum((r) => r.wrong), 'cut off': sum((r) => r.errors), closed: sum((r) => r.closed),
    }),
    below('fanout', 'p99 latency, 201 to receipt', p99, 250, fmt.ms),
    info('fanout', 'p50 / max latency, 201 to receipt', `${fmt.ms(percentile(latency, 0.5))} / ${fmt.ms(Math.max(...latency.map(([v]) => v)))}`),
    atLeast('fanout', `state changes committed (asked ${fmt.rate(RATE)}, open loop)`, w.created / w.sec, RATE * 0.95, fmt.rate),
    info('fanout', 'deliveries/s until the last; POST p50 / p99 from when due', `${fmt.rate(sum((r) => r.deliveries) / deliverySec)}; ${fmt.ms(w.p50)} / ${fmt.ms(w.p99)}`),
    none('fanout', 'POSTs not a 201 change', { unchanged: w.unchanged, failed: w.failed }),
    info('fanout', 'service RSS now / peak (VmRSS / VmHWM)', `${fmt.mb(memory.rssMb)} / ${fmt.mb(memory.peakMb)}`),
    headroom,
  ];
  const { answered: _, ...writer } = w;
  return {
    rows,
    raw: {
      clients: filters.length, watchAll: WATCH_ALL, processes: PROCESSES, rate: RATE, seconds, deliverySec, writer, memory,
      cpu: { server: serverCpu, writer: driverCpu, clients: clientCpu },
      children: results.map(({ latency: __, ...r }) => r), latencyHistogram: latency,
    },
  };
};
