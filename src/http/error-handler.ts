import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUnavailable } from '../db/types.js';
import { type FieldError, ProblemError } from './errors.js';
import { SECURITY_HEADERS } from './security.js';

const PROBLEM = 'application/problem+json; charset=utf-8';

function problemBody(status: number, title: string, detail: string, instance: string, errors: FieldError[]) {
  return { type: 'about:blank', title, status, detail, instance, ...(errors.length ? { errors } : {}) };
}

const FRAMEWORK: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'Unsupported Media Type'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'Content Too Large'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'Bad Request'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'Bad Request'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'Bad Request'],
  FST_ERR_RATE_LIMIT_EXCEEDED: [429, 'Too Many Requests'],
  FST_ERR_BAD_URL: [400, 'Bad Request'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'URI Too Long'],
};

/** Fastify's `frameworkErrors` option: router rejections (malformed %-escapes, long params) as problem+json. */
export function frameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const [status, title] = FRAMEWORK[err.code] ?? [400, 'Bad Request'];
  const path = req.url.split('?')[0]!;
  void reply.status(status).headers(SECURITY_HEADERS).type(PROBLEM).send(problemBody(status, title, err.message, path, []));
}

/** The one place errors become HTTP: problem+json everywhere, never a stack or SQL text to clients. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    let status = 500;
    let title = 'Internal Server Error';
    let detail = 'an unexpected error occurred; it has been logged';
    let errors: FieldError[] = [];
    if (err instanceof ProblemError) {
      ({ status, title } = err);
      detail = err.message;
      errors = err.errors;
      for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
    } else if (err.validation) {
      status = 422;
      title = 'Unprocessable Content';
      const location = err.validationContext ?? 'body';
      errors = err.validation.map((v) => {
        const missing = (v.params as { missingProperty?: string })?.missingProperty;
        const path = `${v.instancePath}${missing ? `/${missing}` : ''}` || '/';
        return { location, path, message: v.message ?? 'is invalid' };
      });
      detail = errors.map((e) => `${location}${e.path === '/' ? '' : e.path}: ${e.message}`).join('; ');
    } else if (err.code && FRAMEWORK[err.code]) {
      [status, title] = FRAMEWORK[err.code]!;
      detail = err.message;
    } else if (isUnavailable(err)) {
      status = 503;
      title = 'Service Unavailable';
      detail = 'the database is unavailable; retry shortly';
      reply.header('retry-after', '1');
    } else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      title = status === 429 ? 'Too Many Requests' : 'Bad Request';
      detail = err.message;
    }
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ status, detail }, 'request rejected');
    void reply.status(status).type(PROBLEM).send(problemBody(status, title, detail, req.url.split('?')[0]!, errors));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).type(PROBLEM)
      .send(problemBody(404, 'Not Found', `no route for ${req.method} ${req.url.split('?')[0]}`, req.url.split('?')[0]!, []));
  });
}
