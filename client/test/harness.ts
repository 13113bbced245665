// Shared by the Node integration and browser e2e tests: a real ck (the root build) on PGlite in a temp dir.
// @ts-expect-error: a plain .mjs module without types, also used by scripts/gen-types.mjs
import { startCk } from '../scripts/ck-server.mjs';

export interface Ck {
  url: string;
  port: number;
  apiKey: string;
  dataDir: string;
  output(): string;
  req(method: string, path: string, body?: unknown, key?: string): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const NO_SESSIONS = 'server without session support';

/**
 * Starts ck and finds out whether it has sessions (GET /config answers 200). Tests of the session
 * features skip themselves with NO_SESSIONS otherwise.
 */
export async function startServer(env: Record<string, string> = {}, opts: { dataDir?: string } = {}): Promise<{ ck: Ck; sessions: boolean }> {
  const ck: Ck = await startCk({ env, ...opts });
  const sessions = (await ck.req('GET', '/config')).status === 200;
  if (!sessions) console.log(`ck at ${ck.url}: ${NO_SESSIONS} (GET /config is missing); session tests are skipped`);
  return { ck, sessions };
}

/** Polls fn until it returns a truthy value (returned) or the time is up (throws with the last value). */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeout = 15_000, every = 50): Promise<T> {
  const deadline = Date.now() + timeout;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err as T;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
