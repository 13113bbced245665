import { randomBytes } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { Scope } from './keys.js';

/** Scopes a per-user token may carry: never admin (a token acts for one user, not on ck itself). */
export const TOKEN_SCOPES = ['ingest', 'read'] as const satisfies readonly Scope[];
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** Longest lifetime a token may be given: one year. */
export const MAX_TOKEN_TTL_SEC = 31_536_000;

const ISSUER = 'ck';
const ALG = 'HS256';

export interface IssuedToken {
  token: string;
  /** The token's id: what DELETE /tokens/:jti revokes. */
  jti: string;
  user_id: string;
  scopes: TokenScope[];
  expires_at: string;
}

export interface VerifiedToken {
  jti: string;
  userId: string;
  scopes: TokenScope[];
}

const keyOf = (secret: string) => new TextEncoder().encode(secret);

/** Three base64url segments: what a JWT looks like (API keys are `ck_<id>_<secret>`, no dots). */
export const looksLikeJwt = (bearer: string) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(bearer);

/**
 * Signs an HS256 JWT for one user: `sub` = user id, `scopes`, `exp` = now + ttl (whole seconds).
 * @example await issueToken(secret, { userId: 'alice', scopes: ['ingest'], ttlSec: 3600, nowMs: Date.now() })
 */
export async function issueToken(
  secret: string,
  opts: { userId: string; scopes: TokenScope[]; ttlSec: number; nowMs: number },
): Promise<IssuedToken> {
  const iat = Math.floor(opts.nowMs / 1000);
  const exp = iat + opts.ttlSec;
  const jti = randomBytes(12).toString('base64url');
  const token = await new SignJWT({ scopes: opts.scopes })
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setSubject(opts.userId)
    .setJti(jti)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(keyOf(secret));
  return { token, jti, user_id: opts.userId, scopes: opts.scopes, expires_at: new Date(exp * 1000).toISOString() };
}

const isTokenScopes = (v: unknown): v is TokenScope[] =>
  Array.isArray(v) && v.length > 0 && v.every((s) => (TOKEN_SCOPES as readonly unknown[]).includes(s));

/**
 * The token's user and scopes, or undefined when the signature, algorithm (HS256 only), issuer or
 * expiry (against `nowMs`, the app's clock) does not hold, or the claims are not ones ck issues.
 */
export async function verifyToken(secret: string, token: string, nowMs: number): Promise<VerifiedToken | undefined> {
  try {
    const { payload } = await jwtVerify(token, keyOf(secret), {
      algorithms: [ALG],
      issuer: ISSUER,
      currentDate: new Date(nowMs),
      requiredClaims: ['sub', 'exp', 'jti'],
    });
    const sub = payload.sub!;
    if (sub.length === 0 || sub.length > 128 || !isTokenScopes(payload.scopes)) return undefined;
    return { jti: payload.jti!, userId: sub, scopes: payload.scopes };
  } catch {
    return undefined;
  }
}
