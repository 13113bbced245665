import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';
import { newSecret } from './signature.js';

export interface Webhook {
  id: string;
  url: string;
  /** null: every user. */
  user_ids: string[] | null;
  /** null: every state. */
  states: string[] | null;
  /** False after the receiver answered 410 Gone, until POST /webhooks/:id/enable. */
  enabled: boolean;
  disabled_at: string | null;
  disabled_reason: string | null;
  created_at: string;
}

export interface Delivery {
  id: string;
  event_id: string;
  user_id: string;
  state: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  /** When the next attempt is due; null unless pending. */
  next_attempt_at: string | null;
  delivered_at: string | null;
  created_at: string;
}

type Row<T> = Omit<T, 'created_at' | 'disabled_at'> & { created_at: number; disabled_at: number | null };

const WEBHOOK_COLUMNS = `id::text, url, user_ids, states, disabled_at IS NULL AS enabled, ck_ms(disabled_at) AS disabled_at,
  disabled_reason, ck_ms(created_at) AS created_at`;
/** A URL as ck shows it: credentials, should an old row hold any, never leave the database. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (!u.username && !u.password) return raw;
    u.username = '***';
    u.password = '';
    return u.href;
  } catch {
    return raw;
  }
}

const toWebhook = (r: Row<Webhook>): Webhook => ({
  ...r, url: redactUrl(r.url), disabled_at: r.disabled_at === null ? null : iso(r.disabled_at), created_at: iso(r.created_at),
});

export async function createWebhook(
  db: Queryable, input: { url: string; user_ids: string[] | null; states: string[] | null },
): Promise<Webhook & { secret: string }> {
  const secret = newSecret();
  const { rows } = await db.query<Row<Webhook>>(
    `INSERT INTO webhooks (url, user_ids, states, secret) VALUES ($1, $2, $3, $4) RETURNING ${WEBHOOK_COLUMNS}`,
    [input.url, input.user_ids, input.states, secret],
  );
  return { ...toWebhook(rows[0]!), secret };
}

export async function listWebhooks(db: Queryable): Promise<Webhook[]> {
  const { rows } = await db.query<Row<Webhook>>(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks ORDER BY id`);
  return rows.map(toWebhook);
}

/** Removes a webhook and its deliveries (pending ones are never sent). */
export async function deleteWebhook(db: Queryable, id: string): Promise<boolean> {
  const { rows } = await db.query(`DELETE FROM webhooks WHERE id = $1::bigint RETURNING id`, [id]);
  return rows.length > 0;
}

/**
 * Replaces a webhook's secret; the old one keeps signing beside it for `overlapSec` (CK_WEBHOOK_ROTATION_OVERLAP).
 * @returns the new secret and when the old one stops signing, or undefined when there is no such webhook
 */
export async function rotateSecret(
  db: Queryable, id: string, overlapSec: number,
): Promise<{ secret: string; previous_secret_expires_at: string } | undefined> {
  const { rows } = await db.query<{ secret: string; expires: number }>(
    `SELECT secret, ck_ms(previous_secret_expires_at) AS expires FROM ck_webhook_rotate($1::bigint, $2, $3::interval)`,
    [id, newSecret(), `${overlapSec} seconds`],
  );
  const r = rows[0];
  return r && { secret: r.secret, previous_secret_expires_at: iso(r.expires) };
}

/** Clears a 410's disabling; the paused deliveries go out again. Undefined when there is no such webhook. */
export async function enableWebhook(db: Queryable, id: string): Promise<Webhook | undefined> {
  const { rows } = await db.query<Row<Webhook>>(
    `UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL WHERE id = $1::bigint RETURNING ${WEBHOOK_COLUMNS}`, [id],
  );
  return rows[0] && toWebhook(rows[0]);
}

/** What a ping needs: the URL and the secrets deliveries are signed with right now. */
export async function webhookTarget(db: Queryable, id: string): Promise<{ url: string; secrets: string[] } | undefined> {
  const { rows } = await db.query<{ url: string; secrets: string[] }>(
    `SELECT w.url, ck_webhook_secrets(w) AS secrets FROM webhooks w WHERE w.id = $1::bigint`, [id],
  );
  return rows[0];
}

export async function webhookExists(db: Queryable, id: string): Promise<boolean> {
  const { rows } = await db.query(`SELECT 1 FROM webhooks WHERE id = $1::bigint`, [id]);
  return rows.length > 0;
}

/** A webhook's deliveries, newest event first; `before` pages by event id. */
export async function listDeliveries(
  db: Queryable, webhookId: string, opts: { status?: string; before?: string; limit: number },
): Promise<Delivery[]> {
  type R = Omit<Delivery, 'next_attempt_at' | 'delivered_at' | 'created_at'> &
    { next_attempt_at: number; delivered_at: number | null; created_at: number };
  const { rows } = await db.query<R>(
    `SELECT d.id::text, d.event_id::text AS event_id, d.user_id, d.event->>'state' AS state, d.status, d.attempts,
            d.last_status, d.last_error, ck_ms(d.next_attempt_at) AS next_attempt_at, ck_ms(d.delivered_at) AS delivered_at,
            ck_ms(d.created_at) AS created_at
       FROM webhook_deliveries d
      WHERE d.webhook_id = $1::bigint AND ($2::text IS NULL OR d.status = $2)
        AND ($3::bigint IS NULL OR d.event_id < $3::bigint)
      ORDER BY d.event_id DESC LIMIT $4`,
    [webhookId, opts.status ?? null, opts.before ?? null, opts.limit],
  );
  return rows.map((r) => ({
    ...r,
    next_attempt_at: r.status === 'pending' ? iso(r.next_attempt_at) : null,
    delivered_at: r.delivered_at === null ? null : iso(r.delivered_at),
    created_at: iso(r.created_at),
  }));
}
