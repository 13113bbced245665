import { randomUUID } from 'node:crypto';
import { type TSchema, Type } from '@sinclair/typebox';
import { DestinationRefused, isWebProtocol, resolveDestination } from '../../webhooks/destination.js';
import { sendAttempt } from '../../webhooks/send.js';
import {
  createWebhook, deleteWebhook, enableWebhook, listDeliveries, listWebhooks, rotateSecret, webhookExists, webhookTarget,
} from '../../webhooks/store.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor } from '../query.js';
import { Cursor, errorResponses, StateName, UserId } from '../schemas.js';
import type { App } from '../types.js';

const Filter = (item: TSchema, max: number, description: string) =>
  Type.Union([Type.Array(item, { minItems: 1, maxItems: max, uniqueItems: true }), Type.Null()], { description });

const Webhook = Type.Object({
  id: Type.String(),
  url: Type.String(),
  user_ids: Type.Union([Type.Array(Type.String()), Type.Null()]),
  states: Type.Union([Type.Array(Type.String()), Type.Null()]),
  enabled: Type.Boolean({ description: 'false after the receiver answered 410 Gone, until POST /webhooks/:id/enable' }),
  disabled_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  disabled_reason: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
});

const Ping = Type.Object({
  ok: Type.Boolean({ description: 'the receiver answered 2xx' }),
  status: Type.Union([Type.Integer(), Type.Null()], { description: "the receiver's HTTP status; null when it did not answer" }),
  error: Type.Union([Type.String(), Type.Null()], { description: 'why there was no answer (refused destination, timeout, connection error)' }),
  webhook_id: Type.String({ description: 'the `webhook-id` header sent' }),
  duration_ms: Type.Integer(),
});

const Delivery = Type.Object({
  id: Type.String(),
  event_id: Type.String(),
  user_id: Type.String(),
  state: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  last_status: Type.Union([Type.Integer(), Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
  next_attempt_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
});

// Digits that fit a bigint, so a huge id is a 404, not a database error.
const Id = Type.Object({ id: Type.String({ pattern: '^[0-9]{1,18}$' }) });
const isCursor = (v: unknown[]): v is [string] => v.length === 1 && typeof v[0] === 'string' && /^\d{1,19}$/.test(v[0]);

/** The URL as stored, or a 422: absolute http(s) only. */
function httpUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw ERRORS.invalid('body', '/url', 'must be an absolute http:// or https:// URL');
  }
  if (!isWebProtocol(u)) throw ERRORS.invalid('body', '/url', 'must use http or https');
  // Credentials in a URL are secrets that would be shown back and logged.
  // Receivers authenticate ck by its signature (docs/webhooks.md).
  if (u.username || u.password) throw ERRORS.invalid('body', '/url', 'must not contain credentials (user:password@); verify the signature instead');
  return u.href;
}

/** Refuses (422 at `/url`) a destination resolving to an internal address, unless allowed. */
async function safeDestination(url: string, allowPrivate: boolean, timeoutMs: number): Promise<void> {
  // Nothing to refuse when private addresses are allowed: no DNS lookup at registration then.
  if (allowPrivate) return;
  let timer: NodeJS.Timeout | undefined;
  // A resolver that does not answer must not hold the request for long.
  const slow = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DestinationRefused(`resolving the host took over ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    await Promise.race([resolveDestination(new URL(url), false), slow]);
  } catch (err) {
    if (err instanceof DestinationRefused) throw ERRORS.destinationRefused('body', '/url', err.message);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export default async function webhooks(app: App) {
  const { db, states, config } = app.ck;

  app.post('/webhooks', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Register a webhook for state changes (the signing secret is returned once)',
      body: Type.Object({
        url: Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) endpoint that receives POSTed events' }),
        user_ids: Type.Optional(Filter(UserId, 1000, 'Only these users (null or absent: all)')),
        states: Type.Optional(Filter(StateName, 100, 'Only changes to these states (null or absent: all)')),
      }),
      response: {
        201: Type.Intersect([Webhook, Type.Object({ secret: Type.String() })]),
        ...errorResponses(400, 401, 403, 413, 415, 422, 503),
      },
    },
  }, async (req, reply) => {
    const body = req.body as { url: string; user_ids?: string[] | null; states?: string[] | null };
    const url = httpUrl(body.url);
    for (const [i, name] of (body.states ?? []).entries()) {
      if (!(await states.get(name))) throw ERRORS.invalid('body', `/states/${i}`, `"${name}" is not a registered state`);
    }
    await safeDestination(url, config.webhookAllowPrivate, config.webhookTimeoutMs);
    const created = await createWebhook(db, { url, user_ids: body.user_ids ?? null, states: body.states ?? null });
    return reply.status(201).send(created);
  });

  app.get('/webhooks', {
    config: { scope: 'admin' },
    schema: {
      summary: 'List webhooks (never their secrets)',
      response: { 200: Type.Object({ webhooks: Type.Array(Webhook) }), ...errorResponses(401, 403, 503) },
    },
  }, async () => ({ webhooks: await listWebhooks(db) }));

  app.delete('/webhooks/:id', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Remove a webhook; its pending deliveries are dropped',
      params: Id,
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!(await deleteWebhook(db, id))) throw ERRORS.notFound(`no webhook "${id}"`);
    return reply.status(204).send();
  });

  app.get('/webhooks/:id/deliveries', {
    config: { scope: 'admin' },
    schema: {
      summary: "A webhook's recent deliveries, newest event first: attempts, last response, next retry",
      params: Id,
      querystring: Type.Object({
        status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')])),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        cursor: Type.Optional(Cursor),
      }),
      response: {
        200: Type.Object({ deliveries: Type.Array(Delivery), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
        ...errorResponses(401, 403, 404, 422, 503),
      },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const q = req.query as { status?: string; limit: number; cursor?: string };
    const before = decodeCursor(q.cursor, isCursor)?.[0];
    if (!(await webhookExists(db, id))) throw ERRORS.notFound(`no webhook "${id}"`);
    const deliveries = await listDeliveries(db, id, { status: q.status, before, limit: q.limit });
    const last = deliveries[deliveries.length - 1];
    return { deliveries, next_cursor: deliveries.length === q.limit && last ? encodeCursor([last.event_id]) : null };
  });

  app.post('/webhooks/:id/rotate', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Replace the signing secret (returned once); the old one keeps signing beside it for CK_WEBHOOK_ROTATION_OVERLAP',
      params: Id,
      response: {
        200: Type.Object({
          secret: Type.String(),
          previous_secret_expires_at: Type.String({ format: 'date-time', description: 'until then deliveries carry both signatures' }),
        }),
        ...errorResponses(401, 403, 404, 422, 503),
      },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const rotated = await rotateSecret(db, id, config.webhookRotationOverlapSec);
    if (!rotated) throw ERRORS.notFound(`no webhook "${id}"`);
    return rotated;
  });

  app.post('/webhooks/:id/enable', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Enable a webhook disabled by a 410 Gone; its paused deliveries go out again',
      params: Id,
      response: { 200: Webhook, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const hook = await enableWebhook(db, id);
    if (!hook) throw ERRORS.notFound(`no webhook "${id}"`);
    return hook;
  });

  app.post('/webhooks/:id/test', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Send a signed `webhook.test` ping now and answer with what the receiver said (no retries, not logged)',
      params: Id,
      response: { 200: Ping, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const target = await webhookTarget(db, id);
    if (!target) throw ERRORS.notFound(`no webhook "${id}"`);
    const webhookId = `test_${randomUUID()}`;
    const started = Date.now();
    const now = app.ck.clock.now();
    const out = await sendAttempt({
      url: target.url, secrets: target.secrets, id: webhookId, timeoutMs: config.webhookTimeoutMs, allowPrivate: config.webhookAllowPrivate,
      envelope: { type: 'webhook.test', timestamp: new Date(now).toISOString(), data: { webhook_id: id } }, nowMs: Date.now(),
    });
    return { ok: out.ok, status: out.code, error: out.error, webhook_id: webhookId, duration_ms: Date.now() - started };
  });
}
