import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';
import { matchSecret, presentedCredential, secretDigest } from '../auth/authorization-header.js';

/**
 * PingOne signs nothing: it authenticates with the headers its subscription is given. We accept a
 * configured secret (several at once, for rotation) as `Authorization: Bearer <secret>`,
 * `Authorization: Basic <base64(user:secret)>` (the user name is ignored), or as the whole value of
 * a named header (PINGONE_WEBHOOK_AUTH_HEADER). Anything else is 401, before the body is looked at.
 */
@Injectable()
export class PingOneAuthGuard implements CanActivate {
  private readonly secrets: Buffer[];

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.secrets = config.pingone.secrets.map(secretDigest);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const raw = request.headers[this.config.pingone.authHeader];
    const value = typeof raw === 'string' ? raw : undefined;
    if (matchSecret(this.presentedSecret(value), this.secrets) >= 0) return true;
    // A 401 names the schemes it takes (RFC 9110); a named header has no scheme to name.
    if (this.config.pingone.authHeader === 'authorization')
      void context
        .switchToHttp()
        .getResponse<FastifyReply>()
        .header('WWW-Authenticate', 'Bearer realm="pingone-webhook", Basic realm="pingone-webhook"');
    throw new UnauthorizedException('missing or wrong webhook credentials');
  }

  /** The whole value of a named header, or the credential of `Authorization`. */
  private presentedSecret(value: string | undefined): string | undefined {
    if (this.config.pingone.authHeader !== 'authorization') return value;
    return presentedCredential(value, { basic: true });
  }
}
