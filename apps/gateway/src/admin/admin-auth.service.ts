import { Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ADMIN_SCOPES, APP_CONFIG, type AdminScope, type AppConfig } from '#config';
import { JwtVerifier } from '#identity-events';

export interface AdminPrincipal {
  /** The API key's name, or `jwt:<sub>` for an access token. Recorded in the audit trail. */
  name: string;
  scopes: AdminScope[];
}

/** Name of the cookie the dashboard login sets (the API key, HttpOnly, scoped to /admin). */
export const ADMIN_COOKIE = 'sr_admin';

/**
 * Who is calling the admin API or the dashboard: an API key (Bearer, Basic password or the dashboard
 * cookie), compared by SHA-256 in constant time, or an OAuth 2 access token (JWT) from the configured
 * issuer. One place, used by the Nest guard and by the dashboard's Fastify hook alike.
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

  async authenticate(headers: { authorization?: string; cookie?: string }): Promise<AdminPrincipal | null> {
    const presented = presentedCredential(headers);
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
      return {
        name: `jwt:${payload.sub}`,
        scopes: ADMIN_SCOPES.filter((s) => granted.includes(s)),
      };
    } catch {
      return null;
    }
  }
}

/** The credential in `Authorization: Bearer`, `Authorization: Basic` (the password) or the dashboard cookie. */
function presentedCredential(headers: { authorization?: string; cookie?: string }): string | undefined {
  const auth = headers.authorization;
  if (auth) {
    const m = /^(Bearer|Basic) (.+)$/i.exec(auth);
    if (!m) return undefined;
    if (m[1]!.toLowerCase() === 'bearer') return m[2];
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
  }
  const cookie = headers.cookie?.split(';').find((c) => c.trim().startsWith(`${ADMIN_COOKIE}=`));
  if (!cookie) return undefined;
  try {
    return decodeURIComponent(cookie.trim().slice(ADMIN_COOKIE.length + 1)) || undefined;
  } catch {
    return undefined;
  }
}
