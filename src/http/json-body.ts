import { isUtf8 } from 'node:buffer';
import sjson from 'secure-json-parse';
import type { FastifyInstance } from 'fastify';
import { ERRORS, type ProblemError } from './errors.js';

/** Deeper JSON is refused: JSON.stringify (content size check, the pg driver) overflows the stack near 5,000. */
export const MAX_JSON_DEPTH = 64;

/** Nesting depth of JSON text, counted without recursion (brackets inside strings do not count). */
function depthOf(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/**
 * A JSON request body: strict UTF-8 (invalid bytes are an error, not silently replaced), an optional BOM,
 * prototype-poisoning keys refused, at most MAX_JSON_DEPTH levels deep. The route parser and the
 * heartbeat lane both parse with this.
 */
export function parseJsonBody(body: Buffer): { value: unknown } | { error: ProblemError } {
  if (!isUtf8(body)) return { error: ERRORS.malformed('request body is not valid UTF-8') };
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM, as TextDecoder would drop it
  if (text.trim() === '') return { error: ERRORS.malformed('request body is empty; send a JSON object') };
  if (depthOf(text) > MAX_JSON_DEPTH) return { error: ERRORS.malformed(`request body is nested deeper than ${MAX_JSON_DEPTH} levels`) };
  try {
    return { value: sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }) };
  } catch (err) {
    return { error: ERRORS.malformed(`malformed JSON: ${(err as Error).message}`) };
  }
}

/** JSON is the only body type: text/plain (a CORS "simple" type browsers send without preflight) is a 415. */
export function registerJsonParser(app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser(['application/json', 'application/problem+json'], { parseAs: 'buffer' }, (_req, body, done) => {
    const parsed = parseJsonBody(body as Buffer);
    if ('error' in parsed) done(parsed.error, undefined);
    else done(null, parsed.value);
  });
}
