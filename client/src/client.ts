import { CkError } from './errors.js';
import { Http, type HttpOptions } from './http.js';
import { Presence, type PresenceOptions } from './presence.js';
import { type SubscribeOptions, Subscription } from './subscribe.js';
import { toIso } from './time.js';
import type { Instant, ServerConfig, ServerInfo, SessionStatus, StateEvent, Summary, TimelineEntry, UserStatus } from './types.js';

export type CkClientOptions = HttpOptions;

/** What the client assumes of a server without `GET /config` (ck's own defaults). */
export const DEFAULT_CONFIG: ServerConfig = { heartbeat_timeout: 60, idle_timeout: 300, max_backfill: 604_800 };

/** Most users per `GET /status` request. */
const STATUS_BATCH = 1000;
/** Most users per `POST /heartbeats` request. */
const HEARTBEAT_BATCH = 10_000;

/**
 * The entry point: one per ck server and credential.
 *
 * @example
 * const ck = new CkClient({ url: 'https://ck.example.com', getToken: () => fetchTokenFromMyBackend() });
 * const me = ck.presence({ userId: 'alice', trackActivity: true });
 * await me.start();
 */
export class CkClient {
  readonly http: Http;
  private cfg?: Promise<ServerInfo>;

  constructor(opts: CkClientOptions) {
    this.http = new Http(opts);
  }

  /**
   * The server's timeouts (`GET /config`), fetched once. A server without the route (404) gets
   * DEFAULT_CONFIG and `sessions: false`: the client then sends no session fields and `setManual` is
   * unsupported.
   */
  config(): Promise<ServerInfo> {
    return (this.cfg ??= this.http.request<ServerConfig>('GET', '/config').then(
      (c) => ({ ...DEFAULT_CONFIG, ...c, sessions: true }),
      (e) => {
        if (e instanceof CkError && e.status === 404) return { ...DEFAULT_CONFIG, sessions: false };
        this.cfg = undefined;
        throw e;
      },
    ));
  }

  /** Forgets the cached configuration (asked again on next use, e.g. after the server was unreachable). */
  forgetConfig(): void {
    this.cfg = undefined;
  }

  /** A session of one user; call `start()` on it. */
  presence(opts: PresenceOptions): Presence {
    return new Presence(this, opts);
  }

  /** Live state changes; `close()` the result to stop. */
  subscribe(opts: SubscribeOptions, onEvent: (event: StateEvent) => void): Subscription {
    return new Subscription(this.http, opts, onEvent);
  }

  /**
   * Heartbeats for many users at once (`POST /heartbeats`, 10,000 per request), for gateways that hold
   * many users' connections: call it every third of `heartbeat_timeout` with the users still connected.
   * Not queued when ck is unreachable (a missed heartbeat is followed by the next).
   */
  async heartbeats(userIds: string[]): Promise<UserStatus[]> {
    const out: UserStatus[] = [];
    for (let i = 0; i < userIds.length; i += HEARTBEAT_BATCH) {
      const r = await this.http.request<{ results: UserStatus[] }>('POST', '/heartbeats', { body: { user_ids: userIds.slice(i, i + HEARTBEAT_BATCH) } });
      out.push(...r.results);
    }
    return out;
  }

  /** One user's status, or null if ck has never seen them. */
  status(userId: string): Promise<UserStatus | null>;
  /** Several users' status, in the order asked; users ck has never seen are left out. */
  status(userIds: string[]): Promise<UserStatus[]>;
  async status(ids: string | string[]): Promise<UserStatus | UserStatus[] | null> {
    if (typeof ids === 'string') {
      return this.http.request<UserStatus>('GET', `/status/${encodeURIComponent(ids)}`).catch((e) => {
        if (e instanceof CkError && e.status === 404) return null;
        throw e;
      });
    }
    const out: UserStatus[] = [];
    for (let i = 0; i < ids.length; i += STATUS_BATCH) {
      const page = await this.http.request<{ users: UserStatus[] }>('GET', '/status', { query: { user_id: ids.slice(i, i + STATUS_BATCH) } });
      out.push(...page.users);
    }
    return out;
  }

  /** A user's alive sessions (device, state, last heartbeat and activity); empty if ck has never seen them. */
  async sessions(userId: string): Promise<SessionStatus[]> {
    if (!(await this.config()).sessions) throw new CkError('unsupported', 'sessions() needs a ck server with sessions (GET /config)');
    return this.http.request<{ sessions: SessionStatus[] }>('GET', `/users/${encodeURIComponent(userId)}/sessions`).then(
      (r) => r.sessions,
      (e) => {
        if (e instanceof CkError && e.status === 404) return [];
        throw e;
      },
    );
  }

  /**
   * A user's checkpoints between `from` and `to` with their durations, every page followed. The state in
   * force at `from` is included from its start; the last entry is `open`.
   */
  async timeline(userId: string, o: { from?: Instant; to?: Instant; pageSize?: number } = {}): Promise<TimelineEntry[]> {
    const out: TimelineEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.http.request<{ checkpoints: TimelineEntry[]; next_cursor: string | null }>('GET', '/checkpoints', {
        query: { user_id: userId, from: o.from && toIso(o.from), to: o.to && toIso(o.to), limit: o.pageSize, cursor },
      });
      out.push(...page.checkpoints);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return out;
  }

  /**
   * Seconds per state per local day. `from` and `to` are inclusive local dates (YYYY-MM-DD); `tz` an IANA
   * zone (default: the user's, else UTC); `dayStart` HH:MM (default 00:00).
   */
  summaries(userId: string, o: { from: string; to: string; tz?: string; dayStart?: string }): Promise<Summary> {
    return this.http.request<Summary>('GET', '/summaries', {
      query: { user_id: userId, from: o.from, to: o.to, tz: o.tz, day_start: o.dayStart },
    });
  }
}
