import type { HeartbeatResult } from '../liveness/coalescer.js';
import type { StateRegistry } from '../states/registry.js';
import { iso } from '../time.js';

/** A heartbeat's answer, field for field the `Status` schema (same keys, same order). */
export interface StatusView {
  user_id: string;
  state: string;
  online: boolean;
  state_since: string;
  last_heartbeat: string;
}

// Heartbeats answered in the same millisecond share last_heartbeat: format it once.
function isoMemo(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastIso = '';
  return (ms) => (ms === lastMs ? lastIso : (lastIso = iso((lastMs = ms))));
}

/** Heartbeat results as the API answers them; times are formatted once where they repeat. */
export function statusView(states: StateRegistry): (r: HeartbeatResult) => StatusView {
  const isoOf = isoMemo();
  return (r) => ({
    user_id: r.user_id,
    state: r.state,
    online: states.isOnline(r.state),
    state_since: r.known ? (r.known.stateSinceIso ??= iso(r.state_since)) : iso(r.state_since),
    last_heartbeat: isoOf(r.last_heartbeat),
  });
}

/**
 * The same answer as JSON text, as the route's serializer writes it (keys in schema order), for the
 * heartbeat lane. All but last_heartbeat is rendered once per cached user and state.
 */
export function statusJson(states: StateRegistry): (r: HeartbeatResult) => string {
  const isoOf = isoMemo();
  const head = (r: HeartbeatResult) => `{"user_id":${JSON.stringify(r.user_id)},"state":${JSON.stringify(r.state)},`
    + `"online":${states.isOnline(r.state)},"state_since":"${iso(r.state_since)}","last_heartbeat":"`;
  return (r) => `${r.known ? (r.known.rendered ??= head(r)) : head(r)}${isoOf(r.last_heartbeat)}"}`;
}
