import { expect } from 'vitest';
import type { Queryable } from '../../src/db/types.js';
import { call } from './process.js';

/** Mixed ingest load (heartbeats + alternating checkpoints) and the timeline invariants checked after a fault. */

export interface Acked {
  id: string;
  user_id: string;
  state: string;
}

export interface Outcome {
  kind: 'heartbeat' | 'checkpoint';
  /** Date.now() when the request was sent. */
  sent: number;
  ms: number;
  status?: number;
  contentType?: string;
  body?: any;
  /** A network error or a client-side timeout instead of a response. */
  error?: string;
}

export interface Load {
  /** Checkpoints acknowledged with 201. */
  acked: Acked[];
  /** Newest acknowledged last_heartbeat (epoch ms) per user. */
  beats: Map<string, number>;
  outcomes: Outcome[];
  /** Stops sending and waits for the requests in flight. */
  stop(): Promise<void>;
}

const STATES = ['Busy', 'Away'];

/**
 * `workers` loops, each owning some of `users` and sending, per user in turn, a heartbeat and, every other
 * round, a checkpoint whose state alternates. A user's requests never overlap, so each 201 is a real state
 * change. (A checkpoint makes the next heartbeat a database write; the one after is acknowledged from memory.)
 */
export function startLoad(url: string, key: string, users: string[], workers = 12): Load {
  const load: Load = { acked: [], beats: new Map(), outcomes: [], stop: async () => {} };
  let stopped = false;
  const next = new Map(users.map((u, i) => [u, i % 2]));

  const send = async (kind: Outcome['kind'], path: string, body: object): Promise<Outcome> => {
    const o: Outcome = { kind, sent: Date.now(), ms: 0 };
    try {
      const r = await call(url, key, 'POST', path, body);
      Object.assign(o, { status: r.status, contentType: r.contentType, body: r.body, ms: r.ms });
    } catch (err) {
      o.error = String((err as Error)?.cause ?? err);
      o.ms = Date.now() - o.sent;
    }
    load.outcomes.push(o);
    return o;
  };

  const loop = async (mine: string[]) => {
    for (let i = 0; !stopped; i++) {
      const user = mine[i % mine.length]!;
      const hb = await send('heartbeat', '/heartbeat', { user_id: user });
      if (hb.status === 200) {
        const t = Date.parse(hb.body.last_heartbeat);
        if (t > (load.beats.get(user) ?? 0)) load.beats.set(user, t);
      }
      let ok = hb.status === 200;
      if (!stopped && Math.floor(i / mine.length) % 2 === 0) {
        const k = next.get(user)!;
        const cp = await send('checkpoint', '/checkpoints', { user_id: user, state: STATES[k]! });
        next.set(user, 1 - k);
        if (cp.status === 201) load.acked.push({ id: cp.body.id, user_id: user, state: cp.body.state });
        ok &&= cp.status === 200 || cp.status === 201;
      }
      // Do not spin while the service is down or failing.
      if (!ok) await new Promise((r) => setTimeout(r, 25));
    }
  };

  const n = Math.min(workers, users.length);
  const running = Array.from({ length: n }, (_, w) => loop(users.filter((_, i) => i % n === w)));
  load.stop = async () => {
    stopped = true;
    await Promise.all(running);
  };
  return load;
}

export const userIds = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/**
 * Every acknowledged checkpoint is stored as acknowledged; no user has two consecutive checkpoints in the
 * same state; every session is its user's latest checkpoint.
 */
export async function expectConsistentTimeline(db: Queryable, acked: Acked[]): Promise<void> {
  const { rows: stored } = await db.query<Acked>(
    `SELECT id::text, user_id, state FROM checkpoints WHERE id = ANY($1::bigint[])`, [acked.map((a) => a.id)],
  );
  const byId = new Map(stored.map((r) => [r.id, r]));
  expect(acked.filter((a) => byId.get(a.id)?.user_id !== a.user_id || byId.get(a.id)?.state !== a.state)).toEqual([]);

  const { rows: repeats } = await db.query(
    `SELECT user_id, id::text, state FROM (
       SELECT user_id, id, state, lag(state) OVER (PARTITION BY user_id ORDER BY ts, id) AS prev FROM checkpoints) x
      WHERE state = prev`,
  );
  expect(repeats).toEqual([]);

  const { rows: drift } = await db.query(
    `SELECT coalesce(s.user_id, l.user_id) AS user_id, s.current_state, s.state_since::text, l.state, l.ts::text
       FROM user_sessions s
       FULL JOIN (SELECT DISTINCT ON (c.user_id) c.user_id, c.state, c.ts FROM checkpoints c
                   ORDER BY c.user_id, c.ts DESC, c.id DESC) l ON l.user_id = s.user_id
      WHERE s.current_state IS DISTINCT FROM l.state OR s.state_since IS DISTINCT FROM l.ts`,
  );
  expect(drift).toEqual([]);
}

/** Newest stored last_heartbeat (epoch ms) per user, over their sessions. */
export async function storedHeartbeats(db: Queryable, users: string[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ user_id: string; t: number }>(
    `SELECT u.user_id, ck_ms(greatest(u.last_heartbeat, (SELECT max(s.last_heartbeat) FROM sessions s WHERE s.user_id = u.user_id))) AS t
       FROM user_sessions u WHERE u.user_id = ANY($1::text[])`, [users],
  );
  return new Map(rows.map((r) => [r.user_id, Number(r.t)]));
}

/** Users whose stored last_heartbeat is older than the newest one acknowledged to a client. */
export async function unflushedBeats(db: Queryable, beats: Map<string, number>): Promise<string[]> {
  const stored = await storedHeartbeats(db, [...beats.keys()]);
  return [...beats].filter(([u, t]) => (stored.get(u) ?? 0) < t).map(([u, t]) => `${u}: acked ${t}, stored ${stored.get(u)}`);
}
