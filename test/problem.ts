import { expect } from 'vitest';

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/** A request with a raw body (bytes or text) and any content type. */
export async function rawReq(
  url: string, method: string, path: string, body?: string | Uint8Array, opts: { key?: string; type?: string } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = {};
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (body !== undefined) headers['content-type'] = opts.type ?? 'application/json';
  const res = await fetch(url + path, { method, headers, body: body as BodyInit | undefined });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

export function expectProblem(r: { status: number; headers: Headers; body: any }, status?: number) {
  if (status !== undefined) expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status: r.status, code: expect.stringMatching(/^[a-z_]+$/), detail: expect.any(String) });
  expect(r.body.detail).not.toMatch(/\bat .*\.(ts|js):\d+|SELECT |INSERT /);
}
