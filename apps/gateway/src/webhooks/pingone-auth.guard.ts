import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** True when `presented` equals one of `secrets`; constant time in the secret, and it checks them all. */
export function matchesSecret(presented: string | undefined, secrets: readonly Buffer[]): boolean {
  const candidate = digest(presented ?? '');
  let ok = false;
  for (const secret of secrets) ok = timingSafeEqual(candidate, secret) || ok;
  return ok && presented !== undefined;
}

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
    this.secrets = config.pingone.secrets.map(digest);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const raw = request.headers[this.config.pingone.authHeader];
    const value = typeof raw === 'string' ? raw : undefined;
    if (this.secrets.length > 0 && matchesSecret(this.presentedSecret(value), this.secrets)) return true;
    // A 401 names the schemes it takes (RFC 9110); a named header has no scheme to name.
    if (this.config.pingone.authHeader === 'authorization')
      void context
        .switchToHttp()
        .getResponse<FastifyReply>()
        .header('WWW-Authenticate', 'Bearer realm="pingone-webhook", Basic realm="pingone-webhook"');
    throw new UnauthorizedException('missing or wrong webhook credentials');
  }

  private presentedSecret(value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (this.config.pingone.authHeader !== 'authorization') return value;
    const m = /^(Bearer|Basic) (.+)$/i.exec(value);
    if (!m) return undefined;
    if (m[1]!.toLowerCase() === 'bearer') return m[2];
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
}
