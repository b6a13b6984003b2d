import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type AdminScope, APP_CONFIG, type AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { AuditLog } from '#revocation';
import { adminCallRecord } from './admin-audit.interceptor.js';
import { type AdminPrincipal, AdminAuthService } from './admin-auth.service.js';

const SCOPES = 'admin:scopes';
/** The scope an admin endpoint needs. */
export const RequireScope = (scope: AdminScope) => SetMetadata(SCOPES, scope);

export type AdminRequest = FastifyRequest & { admin?: AdminPrincipal };

/**
 * 401 without valid credentials (with WWW-Authenticate), 403 without the endpoint's scope. The
 * interceptor that audits admin calls only sees calls that got past this guard, so the guard records
 * its own refusals:
 *
 * - a 403 names a known principal: it goes into the audit trail, with the principal as actor;
 * - a 401 is anonymous: it is counted (`session_revoker_admin_auth_failures_total{reason}`) and logged
 *   at warn with its route and request id, never its credential, and kept out of the capped audit
 *   stream, where a flood of them would push real records out.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(
    private readonly auth: AdminAuthService,
    private readonly reflector: Reflector,
    private readonly audit: AuditLog,
    private readonly metrics: RevokerMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AdminRequest>();
    const receivedAt = Date.now();
    // Authenticated once per request: the rate limit's hook did it already (see admin-rate-limit.ts).
    const principal = await this.auth.authenticateRequest(request, { basic: false });
    if (!principal) {
      this.refuseAnonymous(request);
      void context
        .switchToHttp()
        .getResponse<FastifyReply>()
        .header('WWW-Authenticate', 'Bearer realm="session-revoker"');
      throw new UnauthorizedException('missing or invalid admin credentials');
    }
    const scope = this.reflector.get<AdminScope | undefined>(SCOPES, context.getHandler());
    if (scope && !principal.scopes.includes(scope)) {
      this.metrics.adminAuthFailures.inc({ reason: 'missing_scope' });
      await this.auditRefusal({ ...adminCallRecord(request, 403, receivedAt), actor: principal.name });
      throw new ForbiddenException(`this needs the ${scope} scope`);
    }
    request.admin = principal;
    return true;
  }

  /** A 401: counted and logged, not audited. Only the route and the reason: no credential, no path ids. */
  private refuseAnonymous(request: AdminRequest): void {
    const reason = request.headers.authorization ? 'invalid_credentials' : 'missing_credentials';
    this.metrics.adminAuthFailures.inc({ reason });
    request.log.warn(
      {
        admin: {
          method: request.method,
          route: request.routeOptions?.url ?? request.url.split('?')[0],
          reason,
        },
      },
      'admin call refused: 401',
    );
  }

  /**
   * The guard runs before the admin deadline applies: the audit write of a 403 waits at most
   * ENQUEUE_TIMEOUT_MS for Redis, then the 403 goes out regardless (as the interceptor's, a failed
   * audit write never changes the answer).
   */
  private async auditRefusal(record: Parameters<AuditLog['append']>[0]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.enqueueTimeoutMs);
      timer.unref();
    });
    await Promise.race([this.audit.append(record).catch(() => undefined), bound]);
    clearTimeout(timer);
  }
}
