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
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as FastifySchema & object));
}

/** A route's body schema compiled exactly as the router compiles it (the heartbeat lane validates with it). */
export function compileBody<T>(schema: TSchema): (value: unknown) => value is T {
  const validate = strict.compile(schema);
  return (value): value is T => validate(value) as boolean;
}
