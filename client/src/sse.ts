/** One event of a text/event-stream. `id` is the stream's last event id (opaque), null before any. */
export interface SseEvent {
  type: string;
  data: string;
  id: string | null;
}

/**
 * Splits a text/event-stream into events, chunk by chunk, as the WHATWG "event stream interpretation"
 * does: any line ending (CRLF split across chunks included), comments, `retry:`, and an `id:` that stays in
 * force for the following events.
 */
export class SseParser {
  /** The last `retry:` value in milliseconds, or null. */
  retry: number | null = null;
  lastEventId: string | null = null;
  private buf = '';
  private skipLF = false;
  private type = '';
  private data: string[] = [];

  constructor(private onEvent: (e: SseEvent) => void) {}

  push(text: string): void {
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

  private line(line: string): void {
    if (line === '') {
      if (this.data.length) this.onEvent({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastEventId });
      this.type = '';
      this.data = [];
      return;
    }
    if (line[0] === ':') return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = +value;
  }
}
