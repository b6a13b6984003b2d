import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '#config';
import { isAdminPath, routedPath } from './route-path.js';

/**
 * A rate limit on /admin (API and dashboard): 429 with Retry-After. @fastify/rate-limit rather than
 * @nestjs/throttler, which is CommonJS requiring NestJS 12's ESM-only packages: Node 20 runs it, but
 * jest cannot load it, so it could not be tested. A root-level hook, so it runs before the
 * dashboard's own login hook: failed logins count too.
 */
export async function limitAdminCalls(fastify: FastifyInstance, config: AppConfig): Promise<void> {
  await fastify.register(rateLimit, { global: false });
  const limit = fastify.rateLimit({
    max: config.admin.rateLimitPerMinute,
    timeWindow: 60_000,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `rate limit exceeded; retry in ${context.after}`,
    }),
  });
  const limitAdmin = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      await limit.call(fastify, request, reply);
    } catch (err) {
      // The limiter throws its 429 (Retry-After already set); answered here, outside Nest's filters.
      if ((err as { statusCode?: number }).statusCode !== 429) throw err;
      await reply.status(429).send(err);
    }
  };
  // Callback-style: it runs on every webhook delivery, and an async hook costs a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    if (!isAdminPath(routedPath(request))) return done();
    limitAdmin(request, reply).then(() => done(), done);
  });
}
