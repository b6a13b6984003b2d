import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';
import { matchSecret, presentedCredential, secretDigest } from '../auth/authorization-header.js';

/**
 * PingOne signs nothing: it authenticates with the headers its subscription is given. We accept a
 * configured secret (several at once, for rotation) as `Authorization: Bearer <secret>`,
 * `Authorization: Basic <base64(user:secret)>` (the user name is ignored), or as the whole value of
 * a named header (PINGONE_WEBHOOK_AUTH_HEADER). Anything else is 401, before the body is read: the
 * gateway's onRequest hook (http/webhook-auth.ts) asks as the request arrives, and the guard on the
 * route reuses that answer (a request not seen by the hook is checked there).
 */
/** What a refused PingOne delivery is told. */
export const PINGONE_UNAUTHORIZED = 'missing or wrong webhook credentials';

@Injectable()
export class PingOneAuthGuard implements CanActivate {
  private readonly secrets: Buffer[];
  /** Requests whose secret was checked and matched, so a delivery is checked once. */
  private readonly accepted = new WeakSet<FastifyRequest>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.secrets = config.pingone.secrets.map(secretDigest);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (this.acceptsRequest(request)) return true;
    this.challenge(context.switchToHttp().getResponse<FastifyReply>());
    throw new UnauthorizedException(PINGONE_UNAUTHORIZED);
  }

  /** Whether the request's headers carry one of the configured secrets (checked once per request). */
  acceptsRequest(request: FastifyRequest): boolean {
    if (this.accepted.has(request)) return true;
    if (!this.accepts(request.headers)) return false;
    this.accepted.add(request);
    return true;
  }

  /** Whether the headers carry one of the configured secrets. */
  private accepts(headers: IncomingHttpHeaders): boolean {
    const raw = headers[this.config.pingone.authHeader];
    return matchSecret(this.presentedSecret(typeof raw === 'string' ? raw : undefined), this.secrets) >= 0;
  }

  /** A 401 names the schemes it takes (RFC 9110); a named header has no scheme to name. */
  challenge(reply: FastifyReply): void {
    if (this.config.pingone.authHeader === 'authorization')
      void reply.header('WWW-Authenticate', 'Bearer realm="pingone-webhook", Basic realm="pingone-webhook"');
  }

  /** The whole value of a named header, or the credential of `Authorization`. */
  private presentedSecret(value: string | undefined): string | undefined {
    if (this.config.pingone.authHeader !== 'authorization') return value;
    return presentedCredential(value, { basic: true });
  }
}
