import type { Status } from '../liveness/status.js';
import { iso } from '../time.js';

// Heartbeats answered in the same millisecond share last_heartbeat: format it once.
let lastMs = Number.NaN;
let lastIso = '';
const isoOf = (ms: number) => (ms === lastMs ? lastIso : (lastIso = iso((lastMs = ms))));

/**
 * A status as the API writes it: JSON text, keys in the order of the `Status` schema. The one renderer
 * of a status: the heartbeat route, the heartbeat lane and GET /status all answer with it.
 */
export function statusJson(s: Status): string {
  const head = `{"user_id":${JSON.stringify(s.user_id)},"state":${JSON.stringify(s.state)},"online":${s.online},`
    + `"state_since":"${iso(s.state_since)}","last_heartbeat":"${isoOf(s.last_heartbeat)}"`;
  if (s.sessions === undefined) return `${head}}`;
  const manual = s.manual
    ? `{"state":${JSON.stringify(s.manual.state)},"until":${s.manual.until === null ? 'null' : `"${iso(s.manual.until)}"`}}`
    : 'null';
  return `${head},"sessions":${s.sessions},"manual":${manual}}`;
}

/** A JSON array of statuses. */
export const statusListJson = (list: Status[]) => `[${list.map(statusJson).join(',')}]`;
