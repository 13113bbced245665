import { get, type IncomingMessage } from 'node:http';
import { selfCpuMeter } from '../proc.js';
import type { ChildResult, ToChild } from './protocol.js';

/**
 * A child process holding many SSE connections to GET /events (`node --import tsx
 * bench/fanout/sse-clients.ts`, driven over IPC by the fanout scenario). Each connection has a light
 * parser: events split at blank lines, `user_id` and `timestamp` cut out of the data line without
 * JSON.parse, the `id:` line ignored (its format is the server's business). A delivery is recorded as
 * its event's key (user_id|timestamp) and the Date.now() it arrived at; the parent sends the moments
 * the writer got each 201, and the child compares.
 */

interface Client {
  filter: string | null;
  buf: string;
  count: number;
  /** Events for a user the client did not ask for. */
  wrong: number;
}

const clients: Client[] = [];
/** Event key -> arrival times (ms), one per delivery in this process. */
const receipts = new Map<string, number[]>();
let errors = 0;
let closed = 0;
let deliveries = 0;
let cpu = selfCpuMeter();

const cut = (s: string, from: number, field: string): string | undefined => {
  const i = s.indexOf(field, from);
  if (i < 0) return undefined;
  const start = i + field.length;
  return s.slice(start, s.indexOf('"', start));
};

function onData(c: Client, chunk: string): void {
  const now = Date.now();
  c.buf += chunk;
  let end: number;
  while ((end = c.buf.indexOf('\n\n')) >= 0) {
    const block = c.buf.slice(0, end);
    c.buf = c.buf.slice(end + 2);
    const data = block.indexOf('data: ');
    if (data < 0) continue; // a comment (keep-alive) or `retry:`
    if (block.startsWith('event: error') || block.includes('\nevent: error')) {
      errors++;
      continue;
    }
    const user = cut(block, data, '"user_id":"');
    const ts = cut(block, data, '"timestamp":"');
    if (user === undefined || ts === undefined) continue;
    if (c.filter !== null && c.filter !== user) c.wrong++;
    c.count++;
    deliveries++;
    const key = `${user}|${ts}`;
    const times = receipts.get(key);
    if (times) times.push(now);
    else receipts.set(key, [now]);
  }
}

/** Opens one stream; resolves true once the headers are in (the server has subscribed it by then). */
function open(url: string, key: string, c: Client): Promise<boolean> {
  const path = c.filter === null ? '/events' : `/events?user_id=${encodeURIComponent(c.filter)}`;
  return new Promise((resolve) => {
    const req = get(url + path, { agent: false, headers: { authorization: `Bearer ${key}` } }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(false);
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => onData(c, chunk));
      res.on('close', () => closed++);
      resolve(true);
    });
    req.on('error', () => resolve(false));
  });
}

async function connect(url: string, key: string, filters: (string | null)[], parallel: number): Promise<number> {
  for (const filter of filters) clients.push({ filter, buf: '', count: 0, wrong: 0 });
  let next = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < clients.length) if (!(await open(url, key, clients[next++]!))) failed++;
  }));
  return failed;
}

function finish(answered: [string, number][]): ChildResult {
  const cpuPct = cpu();
  const perUser = new Map<string, number>();
  const watchers = new Map<string, number>();
  let all = 0;
  for (const c of clients) {
    if (c.filter === null) all++;
    else watchers.set(c.filter, (watchers.get(c.filter) ?? 0) + 1);
  }
  const latency = new Map<number, number>();
  let missing = 0;
  let duplicate = 0;
  let matched = 0;
  for (const [key, at] of answered) {
    const user = key.slice(0, key.indexOf('|'));
    perUser.set(user, (perUser.get(user) ?? 0) + 1);
    const times = receipts.get(key) ?? [];
    const expected = all + (watchers.get(user) ?? 0);
    missing += Math.max(0, expected - times.length);
    duplicate += Math.max(0, times.length - expected);
    matched += times.length;
    for (const t of times) latency.set(t - at, (latency.get(t - at) ?? 0) + 1);
  }
  const short = clients.filter((c) => c.count < (c.filter === null ? answered.length : perUser.get(c.filter) ?? 0)).length;
  return {
    type: 'result', clients: clients.length, deliveries, unmatched: deliveries - matched, missing, duplicate, short,
    wrong: clients.reduce((a, c) => a + c.wrong, 0), errors, closed, cpu: cpuPct, latency: [...latency],
  };
}

process.on('message', (m: ToChild) => {
  const reply = (msg: unknown) => process.send!(msg);
  if (m.type === 'connect') {
    void connect(m.url, m.key, m.filters, m.parallel).then((failed) => reply({ type: 'connected', failed }));
  } else if (m.type === 'start') {
    cpu = selfCpuMeter();
  } else if (m.type === 'count') {
    reply({ type: 'count', deliveries });
  } else if (m.type === 'finish') {
    reply(finish(m.answered));
  }
});
