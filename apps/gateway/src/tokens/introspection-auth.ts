import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';
import { AdminAuthService } from '../admin/admin-auth.service.js';
import { matchSecret } from '../auth/authorization-header.js';

/**
 * Who may call POST /oauth2/introspect: a resource server with HTTP Basic `client_id:secret` listed in
 * INTROSPECTION_CLIENTS (RFC 6749 2.3.1: both parts form-urlencoded), or an admin key or access token
 * (Bearer) holding the scope `tokens:introspect`. Secrets are compared by SHA-256 in constant time.
 */
@Injectable()
export class IntrospectionAuth {
  private readonly clients: { id: string; digest: Buffer }[];
  /** Stands in for the other clients' digests: no secret's SHA-256 is known to match it. */
  private readonly filler = randomBytes(32);

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly admin: AdminAuthService,
  ) {
    this.clients = config.tokens.introspectionClients.map((c) => ({
      id: c.id,
      digest: Buffer.from(c.sha256, 'hex'),
    }));
  }

  /** Each request's caller, found once: by the failure budget's hook, then read by the controller. */
  private readonly byRequest = new WeakMap<FastifyRequest, Promise<string | null>>();

  /** The caller of a request (see `caller`), authenticated at most once per request. */
  callerOf(request: FastifyRequest): Promise<string | null> {
    let found = this.byRequest.get(request);
    if (!found) {
      found = this.caller(request.headers.authorization);
      this.byRequest.set(request, found);
    }
    return found;
  }

  /** The caller's name (for logs), or null when it may not introspect. */
  async caller(authorization: string | undefined): Promise<string | null> {
    if (!authorization) return null;
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authorization);
    if (basic) return this.client(Buffer.from(basic[1]!, 'base64').toString('utf8'));
    const principal = await this.admin.authenticate(authorization, { basic: false });
    return principal?.scopes.includes('tokens:introspect') ? principal.name : null;
  }

  private client(decoded: string): string | null {
    const colon = decoded.indexOf(':');
    if (colon <= 0) return null;
    let id: string;
    let secret: string;
    try {
      id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    } catch {
      return null;
    }
    // Every client's digest is compared, whichever id was given, so the time says nothing of the ids.
    const digests = this.clients.map((c) => (c.id === id ? c.digest : this.filler));
    const found = matchSecret(secret, digests);
    return found >= 0 && this.clients[found]!.id === id ? `client:${id}` : null;
  }
}
