import type { FastifyInstance } from 'fastify';
import { PINGONE_UNAUTHORIZED, type PingOneAuthGuard } from '../webhooks/pingone-auth.guard.js';

const PINGONE_ROUTE = '/webhooks/pingone';

/**
 * PingOne's secret is a header: a delivery without it is refused as it arrives, before its body (up to
 * megabytes) is read, and its connection is closed, so an anonymous sender cannot hold memory or a
 * connection with a slow or unfinished body. The route's guard reuses the answer.
 */
export function authenticateWebhooksEarly(fastify: FastifyInstance, guard: PingOneAuthGuard): void {
  // Callback-style: it runs on every webhook delivery, and an async hook costs a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url !== PINGONE_ROUTE || guard.acceptsRequest(request)) return done();
    guard.challenge(reply);
    void reply
      .status(401)
      .header('Connection', 'close')
      .send({ message: PINGONE_UNAUTHORIZED, error: 'Unauthorized', statusCode: 401 });
  });
}
