/** Client-facing errors: a small set of codes with factories; one handler renders problem+json (RFC 9457). */
export interface FieldError {
  /** JSON pointer into the request part at fault, e.g. `/user_id`. */
  path: string;
  message: string;
  /** body, query, params or headers. */
  location: string;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

const field = (location: string, path: string, message: string): FieldError => ({ location, path, message });

export const ERRORS = {
  badRequest: (detail: string, errors: FieldError[] = []) => new ProblemError(400, 'Bad Request', detail, errors),
  invalid: (location: string, path: string, message: string) =>
    new ProblemError(422, 'Unprocessable Content', `${path.slice(1) || location}: ${message}`, [field(location, path, message)]),
  unauthorized: (detail = 'a valid API key or token is required (Authorization: Bearer ...)') =>
    new ProblemError(401, 'Unauthorized', detail, [], { 'www-authenticate': 'Bearer' }),
  forbidden: (detail: string) => new ProblemError(403, 'Forbidden', detail),
  notFound: (detail: string) => new ProblemError(404, 'Not Found', detail),
  conflict: (detail: string, errors: FieldError[] = []) => new ProblemError(409, 'Conflict', detail, errors),
  unavailable: (detail = 'the database is unavailable; retry shortly') =>
    new ProblemError(503, 'Service Unavailable', detail, [], { 'retry-after': '1' }),
};
