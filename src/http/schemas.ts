import { type TSchema, Type } from '@sinclair/typebox';

// One text rule for every name ck stores (user ids, key names, later session ids and clients): no C0 or C1
// control characters, no unpaired UTF-16 surrogates (they cannot round-trip as UTF-8; patterns are
// Unicode-mode, so a proper pair is one code point and passes).
const TEXT_CHAR = '[^\\u0000-\\u001F\\u007F-\\u009F\\uD800-\\uDFFF]';

/** 1 to `maxLength` characters of text by the one rule above. */
export const Text = (maxLength: number, opts: { description?: string; examples?: unknown[] } = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: `^${TEXT_CHAR}+$`, ...opts });

/** 1 to 128 characters of text. */
export const UserId = Text(128, { description: "Your application's id for the user", examples: ['alice'] });

/** 1 to 128 characters of text: one of the user's devices or tabs. */
export const SessionId = Text(128, { description: 'The device or tab (one session each); default "default"', examples: ['phone-7f3a'] });

/** RFC 3339 string or integer epoch milliseconds; parsed by parseInstant. */
export const Instant = Type.Unsafe<string | number>({
  description: 'RFC 3339 timestamp or integer epoch milliseconds',
  examples: ['2026-11-28T09:30:00.000Z', 1795858200000],
});

export const StateName = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$', description: 'A registered state type' });

export const Status = Type.Object({
  user_id: Type.String(),
  state: Type.String(),
  online: Type.Boolean(),
  state_since: Type.String({ format: 'date-time' }),
  last_heartbeat: Type.String({ format: 'date-time' }),
  sessions: Type.Optional(Type.Integer({ description: 'Sessions alive now (GET /status)' })),
  manual: Type.Optional(Type.Union([
    Type.Object({ state: Type.String(), until: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]) }),
    Type.Null(),
  ], { description: 'The manual presence in force (GET /status)' })),
});

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String({ description: 'Stable machine-readable error code (README: Errors)' }),
  detail: Type.String(),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String(), location: Type.String() }))),
}, { $id: 'Problem' });

/** Standard error responses documented on every authenticated route. */
export const errorResponses = (...codes: number[]): Record<number, TSchema> =>
  Object.fromEntries(codes.map((c) => [c, Type.Ref('Problem')]));

export const Cursor = Type.String({ maxLength: 512, description: 'next_cursor from the previous page' });
