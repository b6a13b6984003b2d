import { Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ADMIN_SCOPES, APP_CONFIG, type AdminScope, type AppConfig } from '#config';
import { JwtVerifier } from '#identity-events';
import { matchSecret, presentedCredential } from '../auth/authorization-header.js';

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
  private readonly keys: { name: string; scopes: AdminScope[] }[];
  private readonly digests: Buffer[];
  private readonly jwt?: JwtVerifier;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.keys = config.admin.apiKeys;
    this.digests = config.admin.apiKeys.map((k) => Buffer.from(k.sha256, 'hex'));
    if (config.admin.jwtIssuer) this.jwt = new JwtVerifier([config.admin.jwtIssuer]);
  }

  /** Each request's principal, found once: by the rate limit's hook, then read by the guard. */
  private readonly byRequest = new WeakMap<FastifyRequest, Promise<AdminPrincipal | null>>();

  /** The principal of a request (see `authenticate`), authenticated at most once per request. */
  authenticateRequest(request: FastifyRequest, options: { basic: boolean }): Promise<AdminPrincipal | null> {
    let principal = this.byRequest.get(request);
    if (!principal) {
      principal = this.authenticate(request.headers.authorization, options);
      this.byRequest.set(request, principal);
    }
    return principal;
  }

  get configured(): boolean {
    return this.keys.length > 0 || this.jwt !== undefined;
  }

  async authenticate(
    authorization: string | undefined,
    options: { basic: boolean },
  ): Promise<AdminPrincipal | null> {
    const presented = presentedCredential(authorization, options);
    if (!presented) return null;
    const key = this.matchKey(presented);
    if (key) return key;
    if (this.jwt && presented.split('.').length === 3) return this.verifyToken(presented);
    return null;
  }

  private matchKey(presented: string): AdminPrincipal | null {
    const key = this.keys[matchSecret(presented, this.digests)];
    return key ? { name: key.name, scopes: key.scopes } : null;
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
