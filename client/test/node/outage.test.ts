// ck goes away and comes back (same port, same data dir): the presence queues and back-fills, the
// subscription resumes with Last-Event-ID and repeats nothing.
import { afterAll, expect, it } from 'vitest';
import { CkClient, type Connection, type StateEvent } from '../../src/index.js';
import { startServer, waitFor } from '../harness.js';

const { ck: server } = await startServer();
afterAll(() => server.close());

/** Records the Last-Event-ID of every /events request. */
const sent: (string | undefined)[] = [];
const ck = new CkClient({
  url: server.url, token: server.apiKey, timeout: 2_000,
  fetch: (input, init) => {
    if (String(input).includes('/events')) sent.push((init?.headers as Record<string, string>)['last-event-id']);
    return fetch(input, init);
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('queues checkpoints while ck is down and back-fills them in order with their own times; resumes the stream', async () => {
  const events: StateEvent[] = [];
  const sub = ck.subscribe({ userIds: ['kim'] }, (e) => events.push(e));
  const me = ck.presence({ userId: 'kim', storage: null, maxBackoff: 2_000 });
  const seen: Connection[] = [];
  me.on('connection', (c) => seen.push(c));
  await waitFor(() => sub.status === 'open', 'the stream');
  await me.start();
  expect(await me.set('Busy')).toBe('sent');
  await waitFor(() => events.length === 2, 'Online and Busy live');
  const beforeOutage = events.at(-1)!.id;

  await server.stop();
  await waitFor(() => sub.status === 'reconnecting', 'the stream to notice');
  const t1 = Date.now();
  expect(await me.set('Away', { content: { step: 1 } })).toBe('queued');
  await sleep(1_500);
  const t2 = Date.now();
  expect(await me.set('Busy', { content: { step: 2 } })).toBe('queued');
  await sleep(1_500);
  expect(await me.set('DoNotDisturb')).toBe('queued');
  expect(me.pending.map((c) => c.state)).toEqual(['Away', 'Busy', 'DoNotDisturb']);
  await waitFor(() => me.connection === 'offline', 'the presence to notice');

  await server.restart();
  await waitFor(() => me.connection === 'online' && me.pending.length === 0, 'the queue to drain');
  const timeline = await ck.timeline('kim', { from: new Date(t1 - 60_000) });
  expect(timeline.map((e) => e.state)).toEqual(['Online', 'Busy', 'Away', 'Busy', 'DoNotDisturb']);
  expect(timeline.slice(2, 4).map((e) => e.content)).toEqual([{ step: 1 }, { step: 2 }]);
  // Back-filled at the times set() was called (this process and ck share a clock).
  expect(Math.abs(Date.parse(timeline[2]!.timestamp) - t1)).toBeLessThan(50);
  expect(Math.abs(Date.parse(timeline[3]!.timestamp) - t2)).toBeLessThan(50);
  expect(seen).toContain('offline');

  await waitFor(() => events.length >= 5, 'the back-filled events on the stream');
  expect(events.map((e) => e.state)).toEqual(['Online', 'Busy', 'Away', 'Busy', 'DoNotDisturb']);
  expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  expect(sent[0]).toBeUndefined();
  expect(sent.slice(1).every((id) => id !== undefined)).toBe(true);
  expect(sent).toContain(beforeOutage);

  await me.set('Online');
  await waitFor(() => events.length === 6, 'a live event after the restart');
  sub.close();
  await me.stop();
});

it('a subscription that reconnects after missing changes gets them by replay, once', async () => {
  const events: StateEvent[] = [];
  const sub = ck.subscribe({ userIds: ['lee'] }, (e) => events.push(e));
  await waitFor(() => sub.status === 'open', 'the stream');
  const me = ck.presence({ userId: 'lee', storage: null });
  await me.start();
  await waitFor(() => events.length === 1, 'Online');
  sub.close();
  await me.set('Busy');
  await me.set('Away');
  const again = ck.subscribe({ userIds: ['lee'], lastEventId: sub.lastEventId }, (e) => events.push(e));
  await waitFor(() => events.length === 3, 'the replay');
  await me.set('Online');
  await waitFor(() => events.length === 4, 'live after the replay');
  expect(events.map((e) => e.state)).toEqual(['Online', 'Busy', 'Away', 'Online']);
  again.close();
  await me.stop();
});
