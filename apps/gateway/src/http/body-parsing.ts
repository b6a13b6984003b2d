import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '#config';
import { isAdminPath } from './route-path.js';

/**
 * Bodies stay bytes until a route decides what they are: PingOne's JSON must be quarantined, not
 * refused, when it does not parse; back-channel logout is a form; SSF is a JWT.
 */
export function keepBodiesAsBytes(fastify: FastifyInstance, config: AppConfig): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: config.webhookBodyLimit },
    (_req, body, done) => done(null, body),
  );
  limitBodiesByRoute(fastify, config);
}

/** The JWT webhooks, token introspection and forward auth: one token each, at most. */
const JWT_ROUTES = [
  '/webhooks/oidc/backchannel-logout',
  '/webhooks/ssf',
  '/oauth2/introspect',
  '/auth/verify',
];

/**
 * Each route's own body limit: only PingOne sends megabytes; a back-channel logout, a SET or an admin
 * call needs kilobytes, so nobody gets to park megabytes there. Set on the route as it is added, so
 * Fastify refuses a body over it with 413 as it arrives (by Content-Length at once, else as it streams).
 */
function limitBodiesByRoute(fastify: FastifyInstance, config: AppConfig): void {
  fastify.addHook('onRoute', (route) => {
    if (JWT_ROUTES.includes(route.url)) route.bodyLimit = config.http.jwtBodyLimit;
    else if (isAdminPath(route.url)) route.bodyLimit = config.http.adminBodyLimit;
  });
}
