import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminScope } from '#config';
import { AuditLog } from '#revocation';
import { type AdminPrincipal, AdminAuthService } from './admin-auth.service.js';

const SCOPES = 'admin:scopes';
/** The scope an admin endpoint needs. */
export const RequireScope = (scope: AdminScope) => SetMetadata(SCOPES, scope);

export type AdminRequest = FastifyRequest & { admin?: AdminPrincipal };

/** 401 without valid credentials (with WWW-Authenticate), 403 without the endpoint's scope. */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(
    private readonly auth: AdminAuthService,
    private readonly reflector: Reflector,
    private readonly audit: AuditLog,
  ) {}

  /** Refused calls are audited too (the interceptor only sees calls that got past this guard). */
  private async refuse(request: AdminRequest, status: 401 | 403, actor?: string): Promise<void> {
    const now = Date.now();
    await this.audit
      .append({
        source: 'admin',
        eventType: `${request.method} ${request.routeOptions?.url ?? request.url.split('?')[0]}`,
        result: status,
        receivedAt: now,
        doneAt: now,
        ...(actor ? { actor } : {}),
      })
      .catch(() => undefined);
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AdminRequest>();
    const principal = await this.auth.authenticate(request.headers.authorization, { basic: false });
    if (!principal) {
      await this.refuse(request, 401);
      void context
        .switchToHttp()
        .getResponse<FastifyReply>()
        .header('WWW-Authenticate', 'Bearer realm="session-revoker"');
      throw new UnauthorizedException('missing or invalid admin credentials');
    }
    const scope = this.reflector.get<AdminScope | undefined>(SCOPES, context.getHandler());
    if (scope && !principal.scopes.includes(scope))
      throw new ForbiddenException(`this needs the ${scope} scope`);
    request.admin = principal;
    return true;
  }
}
