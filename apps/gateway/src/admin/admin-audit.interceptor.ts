import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { isRedisUnavailable } from '#redis';
import { AuditLog, type AuditRecord } from '#revocation';
import { catchError, from, mergeMap, type Observable, throwError } from 'rxjs';
import type { AdminRequest } from './admin.guard.js';

/** Path parameters the trail keeps; values longer than any valid id (256) are left out. */
const TARGET_PARAMS = ['userId', 'groupId', 'handle', 'commandId', 'id'] as const;

/**
 * The audit record of one admin call: who, what, when, result, and the ids in its path; never a body,
 * a query string or a credential. Used here and by AdminGuard for the 403s it refuses.
 */
export function adminCallRecord(request: AdminRequest, status: number, receivedAt: number): AuditRecord {
  const params = (request.params ?? {}) as Record<string, unknown>;
  const target = Object.fromEntries(
    TARGET_PARAMS.flatMap((k) => {
      const v = params[k];
      return typeof v === 'string' && v.length > 0 && v.length <= 256 ? [[k, v]] : [];
    }),
  );
  return {
    source: 'admin',
    eventType: `${request.method} ${request.routeOptions?.url ?? request.url.split('?')[0]}`,
    ...(Object.keys(target).length ? { target } : {}),
    result: status,
    receivedAt,
    doneAt: Date.now(),
    ...(request.admin ? { actor: request.admin.name } : {}),
  };
}

/**
 * Every admin call lands in the audit stream (who, what, when, result), the same stream as the
 * revocations the worker executes. Only ids go in, never a body or a credential. Calls the guard
 * refuses are not seen here: it audits a known principal's 403 itself, and keeps anonymous 401s out
 * of the trail (a metric and a log line), so they cannot push real records out of the capped stream.
 */
@Injectable()
export class AdminAuditInterceptor implements NestInterceptor {
  constructor(private readonly audit: AuditLog) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const request = http.getRequest<AdminRequest>();
    const receivedAt = Date.now();
    const record = (status: number) =>
      this.audit.append(adminCallRecord(request, status, receivedAt)).catch(() => undefined);
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
