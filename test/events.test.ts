import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsAfter } from '../src/events/event.js';
import { WITH_POOLER, startServer, type TestServer } from './helpers.js';

/** Reads SSE events from a stream until `count` state events arrived (or the deadline). */
async function collect(url: string, key: string, count: number, headers: Record<string, string> = {}, timeoutMs = 15_000) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}`, ...headers }, signal: ctrl.signal });
  const events: any[] = [];
  let buf = '';
  const reader = res.body!.getReader();
  const ready = { res };
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += new TextDecoder().decode(value);
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.includes('event: state') && data) events.push(JSON.parse(data.slice(6)));
          if (block.includes('event: error') && data) events.push({ error: JSON.parse(data.slice(6)) });
        }
        if (events.length >= count) break;
      }
    } catch {
      // aborted
    } finally {
      clearTimeout(timer);
      ctrl.abort();
    }
    return events;
  })();
  return { ...ready, done };
}

describe.each(WITH_POOLER)('GET /events (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer(backend);
  });
  afterAll(() => s.close());

  it('streams one event per state change, filtered by user_id', async () => {
    const stream = await collect(`${s.url}/events?user_id=ev1`, s.adminKey, 2);
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toMatch(/text\/event-stream/);
    await s.req('POST', '/checkpoints', { user_id: 'other', state: 'Busy' });
    await s.req('POST', '/heartbeat', { user_id: 'ev1' });
    await s.req('POST', '/heartbeat', { user_id: 'ev1' }); // no change, no event
    await s.req('POST', '/checkpoints', { user_id: 'ev1', state: 'Busy', content: { call: 7 } });
    const events = await stream.done;
    expect(events.map((e) => [e.user_id, e.state, e.previous_state, e.source])).toEqual([
      ['ev1', 'Online', null, 'heartbeat'],
      ['ev1', 'Busy', 'Online', 'client'],
    ]);
    expect(events[1].content).toEqual({ call: 7 });
    expect(events[1].timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('replays what was missed after Last-Event-ID, then goes live', async () => {
    const first = await s.req('POST', '/checkpoints', { user_id: 'ev2', state: 'Away' });
    await s.req('POST', '/checkpoints', { user_id: 'ev2', state: 'Busy' });
    await s.req('POST', '/checkpoints', { user_id: 'ev2', state: 'Online' });
    const stream = await collect(`${s.url}/events?user_id=ev2`, s.adminKey, 3, { 'last-event-id': first.body.id });
    await s.req('POST', '/checkpoints', { user_id: 'ev2', state: 'DoNotDisturb' });
    const events = await stream.done;
    expect(events.map((e) => e.state)).toEqual(['Busy', 'Online', 'DoNotDisturb']);
    expect(BigInt(events[0].id)).toBeGreaterThan(BigInt(first.body.id));
  });

  it('an event the client already has or the replay sent goes out once when the hub delivers it late', async () => {
    const first = await s.req('POST', '/checkpoints', { user_id: 'ev3', state: 'Away' });
    const busy = await s.req('POST', '/checkpoints', { user_id: 'ev3', state: 'Busy' });
    const stream = await collect(`${s.url}/events?user_id=ev3`, s.adminKey, 2, { 'last-event-id': first.body.id });
    // The replay went out; now the hub hands the stream the event the client named in Last-Event-ID and
    // the replayed Busy event again, as a hub that read them late would.
    await new Promise((r) => setTimeout(r, 300));
    const late = await eventsAfter(s.db, { xid: '0', id: '0' }, ['ev3'], 10, false);
    expect(late.map((e) => e.event.id)).toEqual([first.body.id, busy.body.id]);
    const hub = s.app.ck.events as unknown as { listeners: Set<(e: unknown) => void> };
    for (const e of late) for (const listener of hub.listeners) listener(e);
    await s.req('POST', '/checkpoints', { user_id: 'ev3', state: 'Online' });
    const events = await stream.done;
    expect(events.map((e) => e.state)).toEqual(['Busy', 'Online']);
  });

  it('needs the read scope', async () => {
    const ingest = await s.key(['ingest']);
    const r = await fetch(`${s.url}/events`, { headers: { authorization: `Bearer ${ingest}` } });
    expect(r.status).toBe(403);
    await r.body?.cancel();
  });
});
