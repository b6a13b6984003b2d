import type { FastifyInstance } from 'fastify';
import type { RevokerMetrics } from '#metrics';

/** Every answer's duration, by method, matched route (never the raw URL: no ids) and status. */
export function measureRequests(fastify: FastifyInstance, metrics: RevokerMetrics): void {
  fastify.addHook('onResponse', (request, reply, done) => {
    metrics.httpDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
    done();
  });
}
