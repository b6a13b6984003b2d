import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { type Observable, throwError, timeout } from 'rxjs';
import { APP_CONFIG, type AppConfig } from '#config';
import {
  adminDeadlineMs,
  REDIS_TIMEOUT_MESSAGE,
  RedisUnavailableException,
} from '../http/redis-unavailable.js';

/**
 * An admin call answers within twice ENQUEUE_TIMEOUT_MS plus a second (plus ADMIN_WAIT_TIMEOUT_MS
 * with ?wait=true), or gets 503 with Retry-After: BullMQ waits for a Redis that has never answered
 * since start-up, and a stalled Redis may never answer, so without a deadline a call could hang for as
 * long as Redis is down. The margin over ENQUEUE_TIMEOUT_MS (within which a revocation is stored or
 * refused) keeps a call that did its work from answering 503. What was started goes on; every admin
 * write is safe to repeat.
 */
@Injectable()
export class AdminDeadlineInterceptor implements NestInterceptor {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const query = context.switchToHttp().getRequest<FastifyRequest>().query as Record<string, unknown>;
    const ms = adminDeadlineMs(this.config, query?.['wait'] === 'true');
    return next.handle().pipe(
      timeout({
        first: ms,
        with: () => throwError(() => new RedisUnavailableException(REDIS_TIMEOUT_MESSAGE)),
      }),
    );
  }
}
