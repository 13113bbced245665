/**
 * Client-facing errors: one table of stable codes, factories that build them, and one handler
 * (error-handler.ts) that renders every one as problem+json (RFC 9457) with its `code`.
 */
export interface FieldError {
  /** JSON pointer into the request part at fault, e.g. `/user_id`. */
  path: string;
  message: string;
  /** body, querystring, params or headers. */
  location: string;
}

/** Every error code ck answers with, its HTTP status and title. Clients branch on `code`. */
export const ERROR_CODES = {
  malformed_request: [400, 'Bad Request'],
  unauthorized: [401, 'Unauthorized'],
  forbidden: [403, 'Forbidden'],
  other_user: [403, 'Forbidden'],
  not_found: [404, 'Not Found'],
  user_not_found: [404, 'Not Found'],
  method_not_allowed: [405, 'Method Not Allowed'],
  request_timeout: [408, 'Request Timeout'],
  conflict: [409, 'Conflict'],
  content_too_large: [413, 'Content Too Large'],
  uri_too_long: [414, 'URI Too Long'],
  unsupported_media_type: [415, 'Unsupported Media Type'],
  validation_failed: [422, 'Unprocessable Content'],
  unknown_state: [422, 'Unprocessable Content'],
  destination_refused: [422, 'Unprocessable Content'],
  rate_limited: [429, 'Too Many Requests'],
  headers_too_large: [431, 'Request Header Fields Too Large'],
  internal_error: [500, 'Internal Server Error'],
  database_unavailable: [503, 'Service Unavailable'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ProblemError extends Error {
  readonly status: number;
  readonly title: string;

  constructor(
    readonly code: ErrorCode,
    detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    [this.status, this.title] = ERROR_CODES[code];
  }
}

const field = (location: string, path: string, message: string): FieldError => ({ location, path, message });

/** The factories routes and hooks throw; nothing else builds a ProblemError. */
export const ERRORS = {
  malformed: (detail: string) => new ProblemError('malformed_request', detail),
  /** A field the schema accepts but ck does not (422 naming it). */
  invalid: (location: string, path: string, message: string) =>
    new ProblemError('validation_failed', `${path.slice(1) || location}: ${message}`, [field(location, path, message)]),
  /** Schema validation failures, already collected per field. */
  validation: (detail: string, errors: FieldError[]) => new ProblemError('validation_failed', detail, errors),
  unknownState: (location: string, path: string, valid: string[]) =>
    new ProblemError('unknown_state', `${path.slice(1)}: is not a registered state; valid: ${valid.join(', ')}`,
      [field(location, path, 'is not a registered state')]),
  /** A webhook URL ck must not call (docs/webhooks.md, "Safe destinations"). */
  destinationRefused: (location: string, path: string, reason: string) =>
    new ProblemError('destination_refused', `${path.slice(1)}: ${reason}`, [field(location, path, reason)]),
  unauthorized: (detail = 'a valid API key or token is required (Authorization: Bearer ...)') =>
    new ProblemError('unauthorized', detail, [], { 'www-authenticate': 'Bearer' }),
  forbidden: (detail: string) => new ProblemError('forbidden', detail),
  /** The same answer whether or not the other user exists: a token learns nothing about them. */
  otherUser: () => new ProblemError('other_user', 'this token acts for its own user only'),
  userNotFound: (user: string) => new ProblemError('user_not_found', `no user ${JSON.stringify(user)}`),
  notFound: (detail: string) => new ProblemError('not_found', detail),
  methodNotAllowed: (detail: string) => new ProblemError('method_not_allowed', detail),
  conflict: (detail: string) => new ProblemError('conflict', detail),
  tooLarge: (detail: string) => new ProblemError('content_too_large', detail),
  uriTooLong: (detail: string) => new ProblemError('uri_too_long', detail),
  unsupportedMediaType: (detail: string) => new ProblemError('unsupported_media_type', detail),
  headersTooLarge: () => new ProblemError('headers_too_large', 'the request headers are too large'),
  requestTimeout: () => new ProblemError('request_timeout', 'the request was not received in time'),
  rateLimited: (detail: string, retryAfterSec: number) =>
    new ProblemError('rate_limited', detail, [], { 'retry-after': String(retryAfterSec) }),
  unavailable: (detail = 'the database is unavailable; retry shortly') =>
    new ProblemError('database_unavailable', detail, [], { 'retry-after': '1' }),
  internal: () => new ProblemError('internal_error', 'an unexpected error occurred; it has been logged'),
};

/** The problem+json document for an error. */
export function problemBody(err: ProblemError, instance: string) {
  return {
    type: 'about:blank', title: err.title, status: err.status, code: err.code, detail: err.message, instance,
    ...(err.errors.length ? { errors: err.errors } : {}),
  };
}

export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
