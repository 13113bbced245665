// The live stream through ck-client, which ck serves at /client.js: Server-Sent Events over fetch()
// (EventSource cannot send an Authorization header), resumed with Last-Event-ID after a drop, with
// backoff, and never the same event twice.
import { CkClient, SseParser } from '/client.js';
import { session } from './api.js';

// The client's parser, for anyone reading a stream by hand (and the dashboard's test).
export { SseParser };

const STATUS = { connecting: 'connecting', open: 'live', reconnecting: 'reconnecting' };

/**
 * Subscribes to every user's state changes with this tab's key and keeps the stream open.
 * onEvent receives each change ({id, user_id, state, previous_state, timestamp, source, content});
 * onStatus receives 'connecting' | 'live' | 'reconnecting' | 'failed' (with a message). A key the server
 * rejects calls onUnauthorized; other refusals (4xx but 429) end the stream as 'failed'.
 */
export function openStream({ onEvent, onStatus, onUnauthorized }) {
  const sub = new CkClient({ token: session.key }).subscribe({}, onEvent);
  sub.on('status', (status) => STATUS[status] && onStatus(STATUS[status]));
  sub.on('error', (err) => {
    if (err.code === 'unauthorized') onUnauthorized();
    else if (err.code !== 'stream') onStatus('failed', err.problem?.detail ?? err.message);
  });
  return { close: () => sub.close() };
}
