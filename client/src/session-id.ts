const KEY = 'ck-client:session';
let processSession: string | undefined;

/** 128 random bits as 32 hex digits (getRandomValues: unlike randomUUID it works on plain http pages too). */
export function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One session per browser tab, kept across reloads of that tab (sessionStorage), or one per Node process.
 * A tab duplicated by the browser copies its sessionStorage, so both tabs share the id: pass `sessionId`
 * where that matters.
 */
export function defaultSessionId(): string {
  try {
    const store = typeof window === 'object' ? window.sessionStorage : undefined;
    if (store) {
      let id = store.getItem(KEY);
      if (!id) store.setItem(KEY, (id = randomId()));
      return id;
    }
  } catch {
    // storage blocked: one id for this page's life
  }
  return (processSession ??= randomId());
}
