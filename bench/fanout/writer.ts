import { Agent, request } from 'node:http';
import { median } from '../load.js';

export interface WriterResult {
  sent: number;
  /** 201s: committed state changes. */
  created: number;
  /** 200 {"changed": false}: would mean two changes of a user overtook each other. */
  unchanged: number;
  failed: number;
  /** [event key (user_id|timestamp), Date.now() when its 201 arrived] */
  answered: [string, number][];
  /** ms from the moment a request was due to its answer. */
  p50: number;
  p99: number;
  sec: number;
}

/**
 * Open loop: POST /checkpoints at `rate` a second for `durationSec`, each request sent when it is due
 * whether or not earlier ones were answered. Request k goes to user k mod n and alternates Away and
 * Busy (the users start Online), so each is a state change; a user's next change is n/rate s later.
 */
export async function writeChanges(url: string, key: string, users: string[], rate: number, durationSec: number): Promise<WriterResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 128 });
  const total = Math.round(rate * durationSec);
  const answered: [string, number][] = [];
  const latencies: number[] = [];
  let sent = 0;
  let done = 0;
  let unchanged = 0;
  let failed = 0;
  let finished: () => void;
  const all = new Promise<void>((resolve) => (finished = resolve));
  const settle = () => ++done === total && finished();
  const t0 = performance.now();

  const fire = (k: number) => {
    const due = t0 + (k * 1000) / rate;
    const body = JSON.stringify({ user_id: users[k % users.length], state: Math.floor(k / users.length) % 2 ? 'Busy' : 'Away' });
    const req = request(`${url}/checkpoints`, {
      method: 'POST', agent,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const at = Date.now();
        latencies.push(performance.now() - due);
        if (res.statusCode === 201) {
          const cp = JSON.parse(text) as { user_id: string; timestamp: string };
          answered.push([`${cp.user_id}|${cp.timestamp}`, at]);
        } else if (res.statusCode === 200) unchanged++;
        else failed++;
        settle();
      });
    });
    req.on('error', () => {
      failed++;
      settle();
    });
    req.end(body);
  };

  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (sent < due) fire(sent++);
    if (sent === total) clearInterval(timer);
  }, 1);
  await all;
  const sec = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    sent, created: answered.length, unchanged, failed, answered,
    p50: median(latencies), p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN, sec,
  };
}
