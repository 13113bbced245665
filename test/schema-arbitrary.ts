import fc from 'fast-check';

/** The JSON Schema subset ck's request schemas use (as @fastify/swagger prints them in openapi.json). */
export interface Schema {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  examples?: unknown[];
}

/** Values that break naive code: huge and odd numbers, control and surrogate characters, SQL, wrong types. */
export const nastyValue: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(
  1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -1, 0, 0.5, 2 ** 63, -(2 ** 31) - 1,
  '', ' ', 'x'.repeat(129), 'x'.repeat(5000), '\u0000', 'a\u0000b', '\ud800', '\udfff\ud800', '😀'.repeat(65),
  "'; DROP TABLE checkpoints; --", "1' OR '1'='1", '$1', '%00', '../../etc/passwd', '<script>alert(1)</script>',
  'NaN', 'Infinity', '-0', '9999999999999999999999', '2026-02-30T25:61:61Z', '0001-01-01T00:00:00Z', '\u202e\u0007\u001b[2J',
  null, true, false, [], {}, [1, 'a', null], { nested: { deeper: [{}] } }, ['admin'], { __proto__: null, constructor: 'x' },
  { 'k\u0000': 'v\u0000' }, { lone: '\ud800' }, { big: 1e308, tiny: -1e-308 },
);

export const nastyKey = fc.constantFrom('__proto__', 'constructor', 'prototype', '', '\u0000', "'; DROP TABLE x; --", 'x'.repeat(300));

const instant = fc.oneof(
  fc.integer({ min: 0, max: 4102444800000 }),
  fc.date({ min: new Date(0), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()),
);

function stringFor(s: Schema): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? 64;
  if (s.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
  const examples = (s.examples ?? []).filter((e): e is string => typeof e === 'string');
  const base = s.pattern
    ? fc.stringMatching(new RegExp(s.pattern, 'u'))
    : fc.string({ unit: 'grapheme', minLength: min, maxLength: Math.min(max, 64) });
  const fitted = base.filter((v) => v.length >= min && v.length <= max);
  return examples.length ? fc.oneof(fc.constantFrom(...examples), fitted) : fitted;
}

/**
 * Realistic values by field name (a registered state, a known user), mixed in so that requests get past
 * validation and reach the database. `undefined` leaves the field out.
 */
export type Hints = Record<string, unknown[]>;

/**
 * Values valid for `schema` (as far as the schema says: routes may still reject them on meaning); a field
 * named in `hints` draws, two times in three, from those of its hints that match the schema's pattern.
 */
export function arbitraryFor(s: Schema, hints: Hints = {}, name?: string): fc.Arbitrary<unknown> {
  const plain = fromSchema(s, hints);
  const re = s.pattern ? new RegExp(s.pattern, 'u') : undefined;
  const fit = (name === undefined ? [] : hints[name] ?? []).filter((v) => !re || v === undefined || (typeof v === 'string' && re.test(v)));
  return fit.length ? fc.oneof({ weight: 1, arbitrary: plain }, { weight: 2, arbitrary: fc.constantFrom(...fit) }) : plain;
}

function fromSchema(s: Schema, hints: Hints): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((a) => fromSchema(a, hints)));
  switch (s.type) {
    case 'string': return stringFor(s);
    case 'integer': return fc.integer({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9 });
    case 'number': return fc.double({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9, noNaN: true });
    case 'boolean': return fc.boolean();
    case 'null': return fc.constant(null);
    case 'array': {
      const min = s.minItems ?? 0;
      const arr = fc.array(fromSchema(s.items ?? {}, hints), { minLength: min, maxLength: Math.max(min, Math.min(s.maxItems ?? 5, 5)) });
      return s.uniqueItems ? arr.map((a) => [...new Map(a.map((v) => [JSON.stringify(v), v])).values()]).filter((a) => a.length >= min) : arr;
    }
    case 'object': {
      const props = s.properties ?? {};
      if (Object.keys(props).length === 0) return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 });
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) record[k] = arbitraryFor(v, hints, k);
      return fc.record(record, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    default: return instant; // untyped: ck's Instant (RFC 3339 text or epoch ms)
  }
}

/** A valid value, or one bent out of shape: a field replaced, dropped or added, or the whole value swapped. */
export function hostileFor(s: Schema, hints: Hints = {}, name?: string): fc.Arbitrary<unknown> {
  const valid = arbitraryFor(s, hints, name);
  const bent = fc.tuple(valid, fc.nat(), nastyValue, nastyKey, fc.constantFrom('replace', 'drop', 'add', 'wrap')).map(([v, i, nasty, key, op]) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return op === 'wrap' ? [v] : nasty;
    const keys = Object.keys(v);
    const k = keys.length ? keys[i % keys.length]! : 'x';
    const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    if (op === 'replace') copy[k] = nasty;
    else if (op === 'drop') delete copy[k];
    else if (op === 'add') Object.defineProperty(copy, key, { value: nasty, enumerable: true });
    else return [v];
    return copy;
  });
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 3, arbitrary: bent }, { weight: 1, arbitrary: nastyValue });
}
