import { describe, expect, it } from 'vitest';
import { Held, NONE } from '../src/liveness/held.js';

describe('Held (the fast path memory, in columns)', () => {
  it('keeps users and sessions apart across growth, removal from the middle and reuse of slots', () => {
    const h = new Held(4);
    const n = 1000;
    for (let i = 0; i < n; i++) {
      const u = h.userOrNew(`u${i}`);
      expect(h.stale(u)).toBe(true);
      h.setUser(u, i % 2 ? 'Busy' : 'Online', i, i + 60_000);
      for (const id of ['a', 'b', 'c']) {
        const s = h.addSession(u, id);
        h.setSessionState(s, 'Online');
        h.stored(s, i * 10, i * 5);
      }
    }
    expect(h.userCount).toBe(n);
    expect(h.sessionCount).toBe(3 * n);
    const u7 = h.user('u7');
    expect([h.state(u7), h.since(u7), h.validUntil(u7), h.stale(u7)]).toEqual(['Busy', 7, 60_007, false]);

    // Remove the middle session of u7: the list still reaches the others.
    const b = h.session(u7, 'b');
    const gen = h.generation(b);
    h.removeSession(b);
    expect(h.session(u7, 'b')).toBe(NONE);
    const left: string[] = [];
    for (let s = h.firstSession(u7); s !== NONE; s = h.nextSession(s)) left.push(h.sessionId(s));
    expect(left.sort()).toEqual(['a', 'c']);

    // The freed slot is handed out again with a new generation: stale work can tell.
    const u8 = h.user('u8');
    const again = h.addSession(u8, 'd');
    expect(again).toBe(b);
    expect(h.generation(again)).not.toBe(gen);
    expect(h.ownerOf(again)).toBe(u8);
    expect([h.persisted(again), h.pendingAt(again)]).toEqual([0, 0]);

    // Buffering: the first heartbeat says so, newer wins, stored never moves back.
    expect(h.buffer(again, 100, 0)).toBe(true);
    expect(h.buffer(again, 90, 95)).toBe(false);
    expect([h.pendingAt(again), h.pendingActiveAt(again)]).toEqual([100, 95]);
    h.stored(again, 50, 40);
    h.stored(again, 30, 20);
    expect([h.persisted(again), h.activePersisted(again)]).toEqual([50, 40]);

    // Dropping a user frees their sessions and the id.
    h.dropUser(u8);
    expect(h.user('u8')).toBe(NONE);
    expect(h.userCount).toBe(n - 1);
    expect(h.sessionCount).toBe(3 * n - 1 - 3);
    expect(h.state(h.user('u9'))).toBe('Busy');
  });

  it('shares repeated session ids', () => {
    const h = new Held();
    const u1 = h.userOrNew('x');
    const u2 = h.userOrNew('y');
    const s1 = h.addSession(u1, ['we', 'b'].join(''));
    const s2 = h.addSession(u2, ['w', 'eb'].join(''));
    expect(h.sessionId(s1)).toBe('web');
    expect(h.sessionId(s2)).toBe('web');
  });
});
