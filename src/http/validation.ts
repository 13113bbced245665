import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifySchema } from 'fastify';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

// Two validators: JSON bodies are checked strictly (a number is not a string), while query strings and
// path params are coerced (every value arrives as text; repeated keys become arrays).
const common = { allErrors: true, removeAdditional: false as const, useDefaults: true, strict: false };
const strict = addFormats(new Ajv({ ...common, coerceTypes: false }));
const coercing = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));

export function registerValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') return strict.compile(schema as FastifySchema & object);
    return decimalNumbers(schema as TSchema, coercing.compile(schema as FastifySchema & object));
  });
}

const DECIMAL = /^-?\d+(\.\d+)?$/;

/**
 * Numbers in query strings and paths are decimal: Ajv's coercion would take `0x10`, `1e3` or ` 5` as
 * numbers (it uses JavaScript's Number()). Such text is replaced by a value no number schema accepts, so
 * the validator answers with its usual 422 at that field.
 */
function decimalNumbers(schema: TSchema, validate: ((data: unknown) => boolean) & { errors?: unknown }) {
  const props = (schema as { properties?: Record<string, { type?: string }> }).properties ?? {};
  const numeric = Object.keys(props).filter((k) => props[k]!.type === 'integer' || props[k]!.type === 'number');
  if (numeric.length === 0) return validate;
  const checked = (data: unknown) => {
    const obj = data as Record<string, unknown> | null;
    if (obj && typeof obj === 'object') {
      for (const k of numeric) if (typeof obj[k] === 'string' && !DECIMAL.test(obj[k] as string)) obj[k] = { not: 'a decimal number' };
    }
    return validate(data);
  };
  // Fastify reads the errors off the function it was given.
  return Object.defineProperty(checked, 'errors', { get: () => validate.errors });
}

/** A route's body schema compiled exactly as the router compiles it (the heartbeat lane validates with it). */
export function compileBody<T>(schema: TSchema): (value: unknown) => value is T {
  const validate = strict.compile(schema);
  return (value): value is T => validate(value) as boolean;
}
