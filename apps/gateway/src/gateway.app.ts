import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BullBoardFastifyAdapter } from '@bull-board/fastify';
import rateLimit from '@fastify/rate-limit';
import { getQueueToken } from '@nestjs/bullmq';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { Queue } from 'bullmq';
import type { AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { ALL_QUEUES } from '#revocation';
import { AdminAuthService } from './admin/admin-auth.service.js';

export const DASHBOARD_PATH = '/admin/queues';

/** The Fastify adapter with the body limit from config (bodies over it get 413 before any route runs). */
export function gatewayAdapter(config: AppConfig): FastifyAdapter {
  return new FastifyAdapter({ bodyLimit: config.webhookBodyLimit });
}

/**
 * Everything the HTTP app needs beyond its module, in one place for production and tests alike (so a
 * supertest test behaves like the real service):
 * - bodies stay bytes until a route decides what they are: PingOne's JSON must be quarantined, not
 *   refused, when it does not parse; back-channel logout is a form; SSF is a JWT;
 * - the bull-board dashboard, behind the admin credentials in its own Fastify hook (Nest guards do not
 *   run on it); a browser gets HTTP Basic (any user name, the API key as password);
 * - a rate limit on /admin (API and dashboard): 429 with Retry-After. @fastify/rate-limit rather than
 *   @nestjs/throttler, which is CommonJS requiring NestJS 12's ESM-only packages: Node 20 runs it,
 *   but jest cannot load it, so it could not be tested;
 * - OpenAPI at /docs and /docs/openapi.json.
 */
export async function configureGateway(
  app: NestFastifyApplication,
  config: AppConfig,
): Promise<NestFastifyApplication> {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: config.webhookBodyLimit },
    (_req, body, done) => done(null, body),
  );

  await fastify.register(rateLimit, {
    global: true,
    max: config.admin.rateLimitPerMinute,
    timeWindow: 60_000,
    allowList: (request) => !request.url.startsWith('/admin'),
  });

  const metrics = app.get(RevokerMetrics);
  fastify.addHook('onResponse', async (request, reply) => {
    metrics.httpDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });

  const auth = app.get(AdminAuthService);
  const board = new BullBoardFastifyAdapter();
  board.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: ALL_QUEUES.map(
      (name) => new BullMQAdapter(app.get<Queue>(getQueueToken(name), { strict: false })),
    ),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'Session Revoker' } },
  });
  await fastify.register(async (scope) => {
    scope.addHook('onRequest', async (request, reply) => {
      const principal = await auth.authenticate({
        authorization: request.headers.authorization,
        cookie: request.headers.cookie,
      });
      if (principal?.scopes.includes('queues:admin')) return;
      await reply
        .status(principal ? 403 : 401)
        .header('WWW-Authenticate', 'Basic realm="Session Revoker dashboard", charset="UTF-8"')
        .header('Cache-Control', 'no-store')
        .send({
          statusCode: principal ? 403 : 401,
          message: principal ? 'this needs the queues:admin scope' : 'log in with an admin API key',
        });
    });
    await scope.register(board.registerPlugin() as never, { prefix: DASHBOARD_PATH });
  });

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Session Revoker')
      .setDescription(
        'Webhook receivers and the admin API. Admin calls take an API key or access token as Bearer.',
      )
      .setVersion('0.1.0')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });

  app.enableShutdownHooks();
  return app;
}
