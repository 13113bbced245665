import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUnavailable } from '../db/types.js';
import { ERRORS, type FieldError, PROBLEM_TYPE, ProblemError, problemBody } from './errors.js';
import { baseHeaders } from './security.js';

/** Fastify's own errors, by code, as ck's. */
const FRAMEWORK: Record<string, (detail: string) => ProblemError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ERRORS.unsupportedMediaType,
  FST_ERR_CTP_BODY_TOO_LARGE: ERRORS.tooLarge,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ERRORS.malformed,
  FST_ERR_CTP_EMPTY_JSON_BODY: ERRORS.malformed,
  FST_ERR_CTP_INVALID_JSON_BODY: ERRORS.malformed,
  FST_ERR_BAD_URL: ERRORS.malformed,
  FST_ERR_MAX_PARAM_LENGTH: ERRORS.uriTooLong,
};

const pathOf = (url: string) => url.split('?')[0]!;

/** Any error thrown while answering a request, as the problem ck answers with. */
export function toProblem(err: FastifyError): ProblemError {
  if (err instanceof ProblemError) return err;
  if (err.validation) {
    const location = err.validationContext ?? 'body';
    const errors: FieldError[] = err.validation.map((v) => {
      const missing = (v.params as { missingProperty?: string })?.missingProperty;
      const path = `${v.instancePath}${missing ? `/${missing}` : ''}` || '/';
      return { location, path, message: v.message ?? 'is invalid' };
    });
    return ERRORS.validation(errors.map((e) => `${location}${e.path === '/' ? '' : e.path}: ${e.message}`).join('; '), errors);
  }
  const framework = err.code ? FRAMEWORK[err.code] : undefined;
  if (framework) return framework(err.message);
  if (isUnavailable(err)) return ERRORS.unavailable();
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return ERRORS.malformed(err.message);
  return ERRORS.internal();
}

function send(reply: FastifyReply, problem: ProblemError, url: string): void {
  void reply.status(problem.status).headers(problem.headers).type(PROBLEM_TYPE).send(problemBody(problem, pathOf(url)));
}

/** Fastify's `frameworkErrors` option: router rejections (malformed %-escapes, long params) as problem+json. */
export function frameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  void reply.headers(baseHeaders(req.id));
  send(reply, toProblem(err), req.url);
}

/** The one place errors become HTTP: problem+json everywhere, never a stack or SQL text to clients. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const problem = toProblem(err);
    if (problem.status >= 500 && problem.code === 'internal_error') req.log.error({ err }, 'request failed');
    else if (problem.status >= 500) req.log.warn({ err }, 'request failed: dependency unavailable');
    else req.log.info({ status: problem.status, code: problem.code, detail: problem.message }, 'request rejected');
    send(reply, problem, req.url);
  });
  app.setNotFoundHandler((req, reply) => {
    send(reply, ERRORS.notFound(`no route for ${req.method} ${pathOf(req.url)}`), req.url);
  });
}

/** Errors from Node's HTTP parser, before any request exists (bad request line, header overflow, timeouts). */
const PARSER: Record<string, () => ProblemError> = {
  HPE_HEADER_OVERFLOW: ERRORS.headersTooLarge,
  ERR_HTTP_REQUEST_TIMEOUT: ERRORS.requestTimeout,
};

/** Fastify's `clientErrorHandler`: the parser's rejections as problem+json on the raw socket, then closed. */
export function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = (PARSER[err.code ?? ''] ?? (() => ERRORS.malformed('the request is not valid HTTP/1.1')))();
  writeRawProblem(socket, problem);
  socket.destroy();
}

/** A complete HTTP/1.1 problem response on a socket that no request object owns; the connection then ends. */
export function writeRawProblem(socket: Socket, problem: ProblemError, instance = '/'): void {
  if (!socket.writable) return;
  const body = JSON.stringify(problemBody(problem, instance));
  const headers = Object.entries({ ...baseHeaders(undefined), ...problem.headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: ${PROBLEM_TYPE}\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`);
}
