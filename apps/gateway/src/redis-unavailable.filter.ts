import { type ArgumentsHost, Catch, HttpException, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import type { FastifyReply } from 'fastify';
import { isRedisUnavailable } from '#config';
import { RedisUnavailableException, RETRY_AFTER_SECONDS } from './webhooks/ingest.service.js';

/**
 * Redis could not take or answer a request: 503 with Retry-After, so the sender retries instead of
 * dropping it and a client never mistakes an outage for a bug (500). A delivery's own
 * RedisUnavailableException, or any Redis connection error that reaches here (admin reads and writes);
 * everything else goes to Nest's handling.
 */
@Catch()
export class RedisUnavailableFilter extends BaseExceptionFilter {
  private readonly log = new Logger('Redis');

  override catch(exception: unknown, host: ArgumentsHost): void {
    const unavailable =
      exception instanceof RedisUnavailableException ||
      (!(exception instanceof HttpException) && isRedisUnavailable(exception));
    if (!unavailable) return super.catch(exception, host);
    // Refusals such as OOM, READONLY or LOADING reach no client 'error' listener: say them here.
    if (!(exception instanceof RedisUnavailableException))
      this.log.warn(`a request met Redis unavailable: ${(exception as Error).message}`);
    const body =
      exception instanceof RedisUnavailableException
        ? exception.getResponse()
        : { statusCode: 503, error: 'Service Unavailable', message: 'Redis is unavailable; retry later' };
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply
      .status(503)
      .header('Retry-After', String(RETRY_AFTER_SECONDS))
      .header('Cache-Control', 'no-store')
      .send(body);
  }
}
