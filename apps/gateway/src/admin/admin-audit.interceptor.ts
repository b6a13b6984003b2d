import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { isRedisUnavailable } from '#redis';
import { AuditLog } from '#revocation';
import { catchError, from, mergeMap, type Observable, throwError } from 'rxjs';
import type { AdminRequest } from './admin.guard.js';

/**
 * Every admin call lands in the audit stream (who, what, when, result), the same stream as the
 * revocations the worker executes. Only ids go in, never a body or a credential.
 */
@Injectable()
export class AdminAuditInterceptor implements NestInterceptor {
  constructor(private readonly audit: AuditLog) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const request = http.getRequest<AdminRequest>();
    const receivedAt = Date.now();
    const record = (status: number) => {
      const params = (request.params ?? {}) as Record<string, string>;
      const target = Object.fromEntries(
        ['userId', 'groupId', 'handle', 'commandId', 'id']
          .filter((k) => params[k])
          .map((k) => [k, params[k]]),
      );
      return this.audit
        .append({
          source: 'admin',
          eventType: `${request.method} ${request.routeOptions?.url ?? request.url.split('?')[0]}`,
          ...(Object.keys(target).length ? { target } : {}),
          result: status,
          receivedAt,
          doneAt: Date.now(),
          ...(request.admin ? { actor: request.admin.name } : {}),
        })
        .catch(() => undefined);
    };
    return next.handle().pipe(
      mergeMap((body) => from(record(http.getResponse<FastifyReply>().statusCode).then(() => body))),
      catchError((err: unknown) =>
        from(
          record(err instanceof HttpException ? err.getStatus() : isRedisUnavailable(err) ? 503 : 500),
        ).pipe(mergeMap(() => throwError(() => err))),
      ),
    );
  }
}
