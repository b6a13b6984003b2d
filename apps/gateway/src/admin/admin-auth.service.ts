import { Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ADMIN_SCOPES, APP_CONFIG, type AdminScope, type AppConfig } from '#config';
import { JwtVerifier } from '#identity-events';

export interface AdminPrincipal {
  /** The API key's name, or `jwt:<sub>` for an access token. Recorded in the audit trail. */
  name: string;
  scopes: AdminScope[];
}

/**
 * Who is calling the admin API or the dashboard: an API key, compared by SHA-256 in constant time, or
 * an OAuth 2 access token (JWT) from the configured issuer. One place, used by the Nest guard and by
 * the dashboard's Fastify hook alike.
 *
 * The API takes `Authorization: Bearer` only. HTTP Basic is for the dashboard's browser login, and a
 * browser replays cached Basic credentials on any request to the host, cross-site ones included: were
 * the API to take them, a page elsewhere could post a revocation with them (CSRF).
 */
@Injectable()
export class AdminAuthService {
  private readonly keys: { name: string; scopes: AdminScope[]; digest: Buffer }[];
  private readonly jwt?: JwtVerifier;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.keys = config.admin.apiKeys.map((k) => ({ ...k, digest: Buffer.from(k.sha256, 'hex') }));
    if (config.admin.jwtIssuer) this.jwt = new JwtVerifier([config.admin.jwtIssuer]);
  }

  get configured(): boolean {
    return this.keys.length > 0 || this.jwt !== undefined;
  }

  async authenticate(
    authorization: string | undefined,
    options: { basic: boolean },
  ): Promise<AdminPrincipal | null> {
    const presented = presentedCredential(authorization, options.basic);
    if (!presented) return null;
    const key = this.matchKey(presented);
    if (key) return key;
    if (this.jwt && presented.split('.').length === 3) return this.verifyToken(presented);
    return null;
  }

  private matchKey(presented: string): AdminPrincipal | null {
    const digest = createHash('sha256').update(presented).digest();
    let found: AdminPrincipal | null = null;
    for (const key of this.keys)
      if (timingSafeEqual(digest, key.digest)) found = { name: key.name, scopes: key.scopes };
    return found;
  }

  private async verifyToken(token: string): Promise<AdminPrincipal | null> {
    try {
      const { payload } = await this.jwt!.verify(token, {
        clockToleranceSec: this.config.jwtClockToleranceSec,
        maxTokenAgeSec: 24 * 3600,
        requiredClaims: ['iss', 'aud', 'exp', 'sub'],
        typ: ['at+jwt', 'jwt'],
      });
      const raw = payload['scope'] ?? payload['scp'];
      const granted = typeof raw === 'string' ? raw.split(' ') : Array.isArray(raw) ? raw.map(String) : [];
      // The name goes into commands and the audit trail, which take at most 256 characters.
      if (typeof payload.sub !== 'string' || payload.sub.length > 200) return null;
      return {
        name: `jwt:${payload.sub}`,
        scopes: ADMIN_SCOPES.filter((s) => granted.includes(s)),
      };
    } catch {
      return null;
    }
  }
}

/** The credential in `Authorization: Bearer`, or (dashboard only) the password of `Authorization: Basic`. */
function presentedCredential(auth: string | undefined, basic: boolean): string | undefined {
  const m = auth ? /^(Bearer|Basic) (.+)$/i.exec(auth) : null;
  if (!m) return undefined;
  if (m[1]!.toLowerCase() === 'bearer') return m[2];
  if (!basic) return undefined;
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
}
