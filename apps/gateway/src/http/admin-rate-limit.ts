import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '#config';
import type { AdminAuthService, AdminPrincipal } from '../admin/admin-auth.service.js';
import type { IntrospectionAuth } from '../tokens/introspection-auth.js';
import { DASHBOARD_PATH } from './dashboard.js';
import { isAdminPath, routedPath } from './route-path.js';

type Limit = ReturnType<FastifyInstance['rateLimit']>;

const INTROSPECT_PATH = '/oauth2/introspect';

/**
 * Rate limits on /admin (API and dashboard), as the request arrives, before its body is read: 429
 * with Retry-After. Two budgets, so that nobody can spend another's: an authenticated caller's calls
 * count against its key (ADMIN_RATE_LIMIT_PER_MINUTE per key), and failed authentications against
 * the client's address (ADMIN_AUTH_FAILURES_PER_MINUTE), which is the forwarded one only from a
 * TRUSTED_PROXIES address. An anonymous client can then lock out only itself, and cannot guess keys
 * faster than its failure budget. A root-level hook, so it runs before the dashboard's login hook.
 *
 * @fastify/rate-limit rather than @nestjs/throttler, which is CommonJS requiring NestJS 12's ESM-only
 * packages: Node 20 runs it, but jest cannot load it, so it could not be tested.
 *
 * POST /oauth2/introspect (when the token verifier is on) shares the failure budget: its client
 * secrets and admin keys must not be guessable faster there than on /admin.
 */
export async function limitAdminCalls(
  fastify: FastifyInstance,
  config: AppConfig,
  auth: AdminAuthService,
  introspection?: IntrospectionAuth,
): Promise<void> {
  await fastify.register(rateLimit, { global: false });
  const limiter = (max: number, keyGenerator: (request: FastifyRequest) => string) =>
    fastify.rateLimit({
      max,
      timeWindow: 60_000,
      keyGenerator,
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        error: 'Too Many Requests',
        message: `rate limit exceeded; retry in ${context.after}`,
      }),
    });
  const principals = new WeakMap<FastifyRequest, AdminPrincipal>();
  const perKey = limiter(config.admin.rateLimitPerMinute, (r) => `key:${principals.get(r)?.name}`);
  const perClientFailures = limiter(config.admin.authFailuresPerMinute, (r) => `failed:${r.ip}`);
  const apply = async (limit: Limit, request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      await limit.call(fastify, request, reply);
    } catch (err) {
      // The limiter throws its 429 (Retry-After already set); answered here, outside Nest's filters.
      if ((err as { statusCode?: number }).statusCode !== 429) throw err;
      await reply.status(429).send(err);
    }
  };
  const limitAdmin = async (request: FastifyRequest, reply: FastifyReply, path: string): Promise<void> => {
    // The dashboard takes a browser's Basic login; the API, Bearer only (see AdminAuthService).
    const principal = await auth.authenticateRequest(request, { basic: path.startsWith(DASHBOARD_PATH) });
    if (!principal) return apply(perClientFailures, request, reply);
    principals.set(request, principal);
    return apply(perKey, request, reply);
  };
  // Callback-style: it runs on every webhook delivery, and an async hook costs a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    const path = routedPath(request);
    if (introspection && path === INTROSPECT_PATH)
      return void introspection
        .callerOf(request)
        .then((caller) => (caller === null ? apply(perClientFailures, request, reply) : undefined))
        .then(() => done(), done);
    if (!isAdminPath(path)) return done();
    limitAdmin(request, reply, path).then(() => done(), done);
  });
}
