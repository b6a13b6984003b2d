import { hash, timingSafeEqual } from 'node:crypto';

/**
 * The credential an `Authorization` header presents: the token of `Bearer <token>`, or, when `basic`
 * is allowed, the password of `Basic <base64(user:password)>` (the user name is ignored: callers
 * authenticate with a secret, not an account). Undefined for any other header, or an empty password.
 */
export function presentedCredential(
  header: string | undefined,
  options: { basic: boolean },
): string | undefined {
  const m = header ? /^(Bearer|Basic) (.+)$/i.exec(header) : null;
  if (!m) return undefined;
  if (m[1]!.toLowerCase() === 'bearer') return m[2];
  if (!options.basic) return undefined;
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
}

/** SHA-256 of a secret: what is compared, so the comparison takes the same time whatever its length. */
export const secretDigest = (secret: string): Buffer => hash('sha256', secret, 'buffer');

/**
 * The index of the digest in `digests` that `presented` matches, or -1: constant time in the secret,
 * and it checks them all, whichever matches.
 */
export function matchSecret(presented: string | undefined, digests: readonly Buffer[]): number {
  if (presented === undefined) return -1;
  const candidate = secretDigest(presented);
  let found = -1;
  digests.forEach((digest, i) => {
    if (timingSafeEqual(candidate, digest)) found = i;
  });
  return found;
}
