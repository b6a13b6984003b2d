import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * The edge's cookie is `<session id>.<key>`: the session id finds the session, and the key (32 random
 * bytes, which only the browser holds) decrypts what the session keeps for later (the ID token, for
 * logout's `id_token_hint`). Redis alone never yields a usable token. A cookie of a plain session id
 * (one an application wrote with the session store) is read as well.
 */
export function parseSessionCookie(
  value: string | undefined,
): { sessionId: string; key?: string } | undefined {
  if (!value) return undefined;
  const parts = value.split('.');
  if (parts.length === 2) return { sessionId: value };
  if (parts.length === 3 && /^[A-Za-z0-9_-]{43}$/.test(parts[2]!))
    return { sessionId: `${parts[0]}.${parts[1]}`, key: parts[2]! };
  return undefined;
}

export const sessionCookieValue = (sessionId: string, key: string): string => `${sessionId}.${key}`;

/** Encrypts `plaintext` (AES-256-GCM) under a fresh key; returns the sealed text and the key. */
export function seal(plaintext: string): { sealed: string; key: string } {
  const key = randomBytes(32).toString('base64url');
  return { sealed: sealWith(plaintext, key), key };
}

/** Encrypts `plaintext` under a key `seal` made (the cookie's), with a fresh IV. */
export function sealWith(plaintext: string, keyText: string): string {
  const key = Buffer.from(keyText, 'base64url');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** The plaintext of `seal`, or undefined when the key or the text is not the one sealed. */
export function unseal(sealed: unknown, key: string | undefined): string | undefined {
  if (typeof sealed !== 'string' || !key) return undefined;
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(key, 'base64url'), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** `Set-Cookie` for the session (HttpOnly, SameSite=Lax, Path=/, Secure when configured), or its removal. */
export function setCookieHeader(
  name: string,
  value: string,
  options: { secure: boolean; maxAgeSeconds: number },
): string {
  return [
    `${name}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    ...(options.secure ? ['Secure'] : []),
    `Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}`,
  ].join('; ');
}

/** Backslashes (which browsers read as slashes) and control characters (header splitting). */
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_PATH = /[\\\x00-\x1f\x7f]/;

/**
 * Where to send the browser after login: only ever a path on this site. Absolute URLs, `//host`,
 * backslashes, control characters and their percent-encoded forms all give `/`.
 */
export function safeReturnPath(rd: unknown): string {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > 2048) return '/';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rd);
  } catch {
    return '/';
  }
  for (const candidate of [rd, decoded])
    if (!candidate.startsWith('/') || candidate.startsWith('//') || UNSAFE_IN_PATH.test(candidate))
      return '/';
  const base = 'http://edge.invalid';
  const url = new URL(rd, base);
  const path = `${url.pathname}${url.search}${url.hash}`;
  // The URL parser resolves dot segments (`/.//host`, `/a/..//host`, `/%2e//host`): the result is
  // checked again, as a browser would read it in a Location header.
  return url.origin === base && !path.startsWith('//') && !path.startsWith('/\\') ? path : '/';
}
