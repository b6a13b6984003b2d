import {
  type ArgumentsHost,
  Catch,
  HttpException,
  Logger,
  ServiceUnavailableException,
} from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import type { FastifyReply } from 'fastify';
import type { AppConfig } from '#config';
import { isRedisUnavailable } from '#redis';

/** Seconds a sender is asked to wait before retrying when Redis could not take or answer a request. */
export const RETRY_AFTER_SECONDS = 5;

/** The body of a 503 for a Redis connection error that reached a handler. */
export const REDIS_UNAVAILABLE_BODY = {
  statusCode: 503,
  error: 'Service Unavailable',
  message: 'Redis is unavailable; retry later',
} as const;

/** The message of a 503 for a call Redis did not answer within its deadline. */
export const REDIS_TIMEOUT_MESSAGE = 'Redis did not answer in time; retry later';

/** Redis could not store a delivery or admin write (or did not answer in time): 503 with Retry-After. */
export class RedisUnavailableException extends ServiceUnavailableException {
  constructor(message = 'could not store the delivery; retry later') {
    super({ statusCode: 503, error: 'Service Unavailable', message });
  }
}

/**
 * How long an admin call (API or dashboard) may take before it answers 503: twice ENQUEUE_TIMEOUT_MS
 * plus a second, and the ?wait=true budget when it waits.
 */
export const adminDeadlineMs = (config: AppConfig, waits = false): number =>
  2 * config.enqueueTimeoutMs + 1000 + (waits ? config.admin.waitTimeoutMs : 0);

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
      exception instanceof RedisUnavailableException ? exception.getResponse() : REDIS_UNAVAILABLE_BODY;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply
      .status(503)
      .header('Retry-After', String(RETRY_AFTER_SECONDS))
      .header('Cache-Control', 'no-store')
      .send(body);
  }
}
