// The API client: every request carries the session's key as a Bearer token.
const KEY = 'ck.apiKey';

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

let onUnauthorized = () => {};
/** Called once when the server rejects the key (401): the page logs out. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function authHeaders(key = session.key) {
  return { authorization: `Bearer ${key}` };
}

function urlFor(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
  }
  return url;
}

/** GET JSON; throws ApiError with the problem+json detail on failure. */
export async function getJson(path, params, { signal, key } = {}) {
  const res = await fetch(urlFor(path, params), {
    headers: { ...authHeaders(key), accept: 'application/json' },
    signal,
    cache: 'no-store',
  });
  if (!res.ok) {
    let detail = res.statusText || `HTTP ${res.status}`;
    try {
      detail = (await res.json()).detail ?? detail;
    } catch {
      // not problem+json
    }
    if (res.status === 401 && key === undefined) onUnauthorized(detail);
    throw new ApiError(res.status, detail);
  }
  return res.json();
}

/** Follows next_cursor; yields each page's body. */
export async function* pages(path, params, opts = {}) {
  let cursor;
  do {
    const body = await getJson(path, { ...params, cursor }, opts);
    yield body;
    cursor = body.next_cursor ?? undefined;
  } while (cursor);
}

export { urlFor };
