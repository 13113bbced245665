// Server-Sent Events over fetch(): EventSource cannot send an Authorization header.
import { authHeaders } from './api.js';

/** Splits a text/event-stream into events (WHATWG "event stream interpretation"). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.skipLF = false;
    this.reset();
    this.lastEventId = null;
    this.retry = null;
  }

  reset() {
    this.type = '';
    this.data = [];
  }

  push(text) {
    let buf = this.buf + text;
    // A chunk that ended in \r already closed its line; a \n opening the next one is the same break.
    if (this.skipLF && buf) {
      if (buf[0] === '\n') buf = buf.slice(1);
      this.skipLF = false;
    }
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    for (let m; (m = eol.exec(buf)); start = eol.lastIndex) {
      this.line(buf.slice(start, m.index));
      if (m[0] === '\r' && eol.lastIndex === buf.length) this.skipLF = true;
    }
    this.buf = buf.slice(start);
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastEventId });
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

/**
 * Opens `url` as an event stream and keeps it open: after a drop it reconnects with Last-Event-ID
 * (backing off up to 30 s), so the server replays what was missed. 401 and other 4xx stop it.
 * onStatus receives 'connecting' | 'live' | 'reconnecting' | 'failed' (with a message).
 */
export function openStream(url, { onEvent, onStatus, onUnauthorized }) {
  const stop = new AbortController();
  let lastEventId = null;
  let retryMs = 2000;

  async function readOnce() {
    const headers = { ...authHeaders(), accept: 'text/event-stream' };
    if (lastEventId) headers['last-event-id'] = lastEventId;
    const res = await fetch(url, { headers, signal: stop.signal, cache: 'no-store' });
    if (res.status === 401) {
      onUnauthorized();
      return 'stop';
    }
    if (res.status >= 400 && res.status < 500 && res.status !== 429) {
      let detail = `HTTP ${res.status}`;
      try {
        detail = (await res.json()).detail ?? detail;
      } catch {
        // not problem+json
      }
      onStatus('failed', detail);
      return 'stop';
    }
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    onStatus('live');
    const parser = new SseParser((e) => {
      lastEventId = e.id ?? lastEventId;
      onEvent(e);
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
      if (parser.retry !== null) retryMs = parser.retry;
    }
    return 'again';
  }

  (async () => {
    let failures = 0;
    onStatus('connecting');
    while (!stop.signal.aborted) {
      let outcome = 'again';
      try {
        outcome = await readOnce();
        failures = 0;
      } catch {
        failures++;
      }
      if (outcome === 'stop' || stop.signal.aborted) return;
      onStatus('reconnecting');
      const backoff = Math.min(retryMs * 2 ** Math.min(failures, 4), 30_000);
      await sleep(backoff * (0.75 + Math.random() * 0.5), stop.signal);
    }
  })();

  return { close: () => stop.abort() };
}
