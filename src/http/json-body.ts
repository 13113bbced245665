import sjson from 'secure-json-parse';
import type { FastifyInstance } from 'fastify';
import { ERRORS } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON bodies: strict UTF-8 (invalid bytes are a 400, not silently replaced), prototype-poisoning keys
 * rejected, at most `limit` bytes (413 from Fastify).
 */
export function registerJsonParser(app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json']);
  app.addContentTypeParser(['application/json', 'application/problem+json'], { parseAs: 'buffer' }, (_req, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      return done(ERRORS.badRequest('request body is not valid UTF-8'), undefined);
    }
    if (text.trim() === '') return done(ERRORS.badRequest('request body is empty; send a JSON object'), undefined);
    try {
      done(null, sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }));
    } catch (err) {
      done(ERRORS.badRequest(`malformed JSON: ${(err as Error).message}`), undefined);
    }
  });
}
