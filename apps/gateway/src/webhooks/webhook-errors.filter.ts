import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RedisUnavailableException, RETRY_AFTER_SECONDS } from './ingest.service.js';

/** A delivery Redis could not take: 503 with Retry-After, so the sender retries instead of dropping it. */
@Catch(RedisUnavailableException)
export class RedisUnavailableFilter implements ExceptionFilter {
  catch(exception: RedisUnavailableException, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply
      .status(503)
      .header('Retry-After', String(RETRY_AFTER_SECONDS))
      .header('Cache-Control', 'no-store')
      .send(exception.getResponse());
  }
}
