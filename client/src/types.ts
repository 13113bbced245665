// Public types. Request and response shapes come from ck's OpenAPI document (generated/openapi.ts).
import type { components, paths } from './generated/openapi.js';

type JsonOf<R> = R extends { content: { 'application/json': infer J } } ? J : never;
type Op<P extends keyof paths, M extends 'get' | 'post'> = paths[P][M];
type Ok<P extends keyof paths, M extends 'get' | 'post', S extends number = 200> =
  Op<P, M> extends { responses: infer R } ? (S extends keyof R ? JsonOf<R[S]> : never) : never;
type BodyOf<P extends keyof paths> = Op<P, 'post'> extends { requestBody: infer B } ? JsonOf<B> : never;

/** An `application/problem+json` error body. */
export type Problem = components['schemas']['def-0'] & { code?: string };

/** One alive session of a user (`GET /users/:user_id/sessions`). */
export type SessionStatus = Ok<'/users/{user_id}/sessions', 'get'>['sessions'][number];

/**
 * A user's current status (`GET /status/:user_id`, and the answer to a heartbeat): `sessions` is how many
 * are alive and `manual` the manual presence in force (both absent from servers without sessions).
 */
export type UserStatus = Ok<'/status/{user_id}', 'get'>;

/** A manual presence set with `setManual`, in force until `until` (null: until cleared). */
export type ManualPresence = NonNullable<UserStatus['manual']>;

/** One entry of a user's timeline (`GET /checkpoints`). */
export type TimelineEntry = Ok<'/checkpoints', 'get'>['checkpoints'][number];

/** Seconds per state per local day (`GET /summaries` for one user). */
export type Summary = Extract<Ok<'/summaries', 'get'>, { days: unknown }>;

/** The stored checkpoint (201) or "no change" (200) answer to `POST /checkpoints`. */
export type CheckpointResult = Ok<'/checkpoints', 'post', 201> | Ok<'/checkpoints', 'post', 200>;

/** Fields the session-aware server accepts on heartbeats and checkpoints. */
export interface SessionFields {
  session_id?: string;
  client?: string;
  active?: boolean;
}

/** `POST /heartbeat` body. */
export type HeartbeatBody = BodyOf<'/heartbeat'> & SessionFields;

/** `POST /checkpoints` body (`timestamp` as epoch milliseconds or RFC 3339). */
export type CheckpointBody = Omit<BodyOf<'/checkpoints'>, 'timestamp'> & SessionFields & { timestamp?: number | string };

/** A state change pushed on `GET /events` (`event: state`). */
export interface StateEvent {
  /** Opaque: compare for equality only. */
  id: string;
  user_id: string;
  state: string;
  previous_state: string | null;
  timestamp: string;
  source: string;
  content: Record<string, unknown> | null;
  session_id?: string | null;
}

/** `GET /config`: the server's timing, in seconds. */
export interface ServerConfig {
  heartbeat_timeout: number;
  idle_timeout: number;
  max_backfill: number;
}

/** A checkpoint waiting for ck to be reachable. `timestamp` is epoch ms on the server's clock. */
export interface QueuedCheckpoint {
  state: string;
  timestamp: number;
  content?: Record<string, unknown>;
  active?: boolean;
}

/** Accepted wherever a point in time is: a Date, epoch milliseconds or an RFC 3339 string. */
export type Instant = Date | number | string;

/** The server's configuration as the client uses it; `sessions` is false for servers without `GET /config`. */
export type ServerInfo = ServerConfig & { sessions: boolean };
