import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LoggedEvent, StateEvent } from '../src/events/event.js';
import type { EventHub } from '../src/events/hub.js';
import type { Sink } from '../src/events/stream.js';
import { EventStreams } from '../src/events/streams.js';

/** A sink whose unsent bytes the test sets: the stream machinery sees what a stuck client looks like. */
function fakeSink() {
  const sink = {
    written: [] as string[],
    buffered: 0,
    ended: false,
    destroyed: false,
    write(chunk: string) {
      this.written.push(chunk);
    },
    drained: () => Promise.resolve(),
    end() {
      this.ended = true;
    },
    destroy() {
      this.destroyed = true;
    },
    get closed() {
      return this.ended || this.destroyed;
    },
  };
  return sink as typeof sink & Sink;
}

function fakeHub() {
  let listener: (e: LoggedEvent) => void = () => {};
  return {
    hub: { subscribe: (fn: (e: LoggedEvent) => void) => ((listener = fn), () => {}) } as unknown as EventHub,
    emit: (e: LoggedEvent) => listener(e),
  };
}

const event = (id: number, user: string): LoggedEvent => {
  const e: StateEvent = { id: String(id), user_id: user, session_id: null, state: 'Busy', previous_state: null, timestamp: '2026-12-01T00:00:00.000Z', source: 'client', content: null };
  return { position: { xid: '100', id: String(id) }, type: 'state', event: e, frame: `id: ${id}\nevent: state\ndata: ${JSON.stringify(e)}\n\n` };
};

describe('event streams (units, fake sinks)', () => {
  afterEach(() => vi.useRealTimers());

  it('fan out an event only to the streams that watch its user, and to those watching everyone', async () => {
    const { hub, emit } = fakeHub();
    const streams = new EventStreams(hub, { pageSize: 10, maxBuffered: 1000, maxHeld: 10, maxTotalBuffered: 10_000, keepAliveMs: 15_000, readPage: () => async () => [] });
    const [a, b, all] = [fakeSink(), fakeSink(), fakeSink()];
    await streams.open(a, ['a'], undefined);
    await streams.open(b, ['b'], undefined);
    await streams.open(all, undefined, undefined);
    emit(event(1, 'a'));
    emit(event(2, 'c'));
    expect(a.written.join('')).toContain('id: 1\n');
    expect(b.written).toEqual([]);
    expect(all.written.join('')).toMatch(/id: 1\n[\s\S]*id: 2\n/);
    streams.stop();
  });

  it('cut off the clients furthest behind once all of them together pass the total bound', async () => {
    vi.useFakeTimers();
    const { hub } = fakeHub();
    const streams = new EventStreams(hub, { pageSize: 10, maxBuffered: 1000, maxHeld: 10, maxTotalBuffered: 60, keepAliveMs: 15_000, readPage: () => async () => [] });
    const sinks = [fakeSink(), fakeSink(), fakeSink()];
    for (const s of sinks) await streams.open(s, undefined, undefined);
    [sinks[0]!.buffered, sinks[1]!.buffered, sinks[2]!.buffered] = [30, 50, 20];
    vi.advanceTimersByTime(1000);
    expect(sinks.map((s) => s.ended)).toEqual([false, true, false]);
    expect(sinks[1]!.written.join('')).toMatch(/event: error\ndata: .*buffer limit/);
    vi.advanceTimersByTime(1000); // the error had its second to get through: then the connection goes
    expect(sinks[1]!.destroyed).toBe(true);
    expect(streams.size).toBe(2);
    streams.stop();
  });

  it('give a client a second to drain a burst, then cut it off if it is still behind', async () => {
    vi.useFakeTimers();
    const { hub, emit } = fakeHub();
    const streams = new EventStreams(hub, { pageSize: 10, maxBuffered: 1000, maxHeld: 10, maxTotalBuffered: 1e9, keepAliveMs: 15_000, readPage: () => async () => [] });
    const [fast, slow] = [fakeSink(), fakeSink()];
    await streams.open(fast, undefined, undefined);
    await streams.open(slow, undefined, undefined);
    emit(event(1, 'x'));
    fast.buffered = slow.buffered = 5000; // a burst: both behind
    vi.advanceTimersByTime(1000);
    fast.buffered = 0; // the fast one read it
    vi.advanceTimersByTime(1000);
    vi.advanceTimersByTime(1000);
    expect(fast.ended).toBe(false);
    expect(slow.ended).toBe(true);
    streams.stop();
  });
});
