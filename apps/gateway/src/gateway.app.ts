import { createBullBoard } from '@bull-board/api';
import type { HTTPStatus } from '@bull-board/api/typings/app';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BullBoardFastifyAdapter } from '@bull-board/fastify';
import rateLimit from '@fastify/rate-limit';
import { getQueueToken } from '@nestjs/bullmq';
import { Logger as NestLogger } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { Queue } from 'bullmq';
import { type AppConfig, isRedisUnavailable, type RedisClient } from '#config';
import type { DestinationStream, Logger } from 'pino';
import { createLogger, requestId } from '#logging';
import { RevokerMetrics } from '#metrics';
import { ALL_QUEUES } from '#revocation';
import { AdminAuthService } from './admin/admin-auth.service.js';
import { QUEUE_REDIS } from './queue-redis.provider.js';
import {
  adminDeadlineMs,
  REDIS_TIMEOUT_MESSAGE,
  REDIS_UNAVAILABLE_BODY,
  RETRY_AFTER_SECONDS,
} from './redis-unavailable.js';

export const DASHBOARD_PATH = '/admin/queues';
/** The dashboard's JSON API (its page and static files do not touch Redis). */
const DASHBOARD_API = `${DASHBOARD_PATH}/api/`;

type DashboardErrorHandler = Parameters<BullBoardFastifyAdapter['setErrorHandler']>[0];

/**
 * bull-board's Fastify adapter, answering a Redis connection error with 503 (its own handler says 500,
 * as for a bug). Other errors keep bull-board's answer.
 */
class DashboardAdapter extends BullBoardFastifyAdapter {
  private readonly log = new NestLogger('Redis');

  override setErrorHandler(handler: DashboardErrorHandler): this {
    return super.setErrorHandler((error) => {
      if (!isRedisUnavailable(error)) return handler(error);
      this.log.warn(`a dashboard request met Redis unavailable: ${error.message}`);
      // bull-board's status type lists only the codes it answers itself; Fastify sends any.
      return { status: 503 as HTTPStatus, body: REDIS_UNAVAILABLE_BODY };
    });
  }
}

const isAdminPath = (path: string) => path === '/admin' || path.startsWith('/admin/');

function decodedPath(url: string): string {
  const path = url.split('?')[0]!;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * One log line per request, when it is answered, with its method and path (Fastify's default writes a
 * second one when it arrives: at webhook rates the log lines cost more CPU than the enqueue).
 */
class OneLineRequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error)
      reply.log.error(
        { req: request, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      );
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

/** The pino logger of the gateway: JSON, redacted, including the configured webhook secret header. */
export function gatewayLogger(config: AppConfig, stream?: DestinationStream): Logger {
  return createLogger(config.logLevel, stream, [`req.headers["${config.pingone.authHeader}"]`]);
}

/**
 * The Fastify adapter: the body limit from config (bodies over it get 413 before any route runs) and
 * JSON request logs carrying a request id (the caller's x-request-id, else a new one).
 */
export function gatewayAdapter(config: AppConfig, logger: Logger = gatewayLogger(config)): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: config.webhookBodyLimit,
    // Ids in paths may be 256 characters (the session store's limit), more once percent-encoded.
    routerOptions: { maxParamLength: 2048 },
    loggerInstance: logger,
    genReqId: requestId,
    logController: new OneLineRequestLog(),
  });
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

  // A root-level hook, so it runs before the dashboard's own login hook: failed logins count too.
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
  // Callback-style hooks: they run on every webhook delivery, and an async hook costs a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    // The matched route, not the raw URL: /%61dmin/... routes to /admin/... too.
    if (!isAdminPath(request.routeOptions.url ?? decodedPath(request.url))) return done();
    limitAdmin(request, reply).then(() => done(), done);
  });

  const metrics = app.get(RevokerMetrics);
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

  const auth = app.get(AdminAuthService);
  const queueRedis = app.get<RedisClient>(QUEUE_REDIS);
  const board = new DashboardAdapter();
  board.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: ALL_QUEUES.map(
      (name) => new BullMQAdapter(app.get<Queue>(getQueueToken(name), { strict: false })),
    ),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'Session Revoker' } },
  });
  /**
   * The dashboard's API reads the queues through BullMQ, which waits for as long as its Redis is not
   * connected, and a stalled Redis may never answer: without Redis it answers 503 at once, and a call
   * still unanswered at the admin deadline gets 503 then (what bull-board answers later is dropped).
   */
  const deadline = adminDeadlineMs(config);
  const withinDeadline = async (reply: FastifyReply): Promise<void> => {
    if (queueRedis.status !== 'ready') {
      await reply.status(503).send(REDIS_UNAVAILABLE_BODY);
      return;
    }
    const timer = setTimeout(() => {
      if (!reply.sent)
        void reply.status(503).send({ ...REDIS_UNAVAILABLE_BODY, message: REDIS_TIMEOUT_MESSAGE });
    }, deadline);
    reply.raw.once('close', () => clearTimeout(timer));
  };
  await fastify.register(async (scope) => {
    scope.addHook('onRequest', async (request, reply) => {
      // The browser replays its Basic login on cross-site requests too: refuse a write that says it
      // comes from another site (CSRF); clients that send no such header are not browsers.
      const site = request.headers['sec-fetch-site'];
      const origin = request.headers.origin;
      const crossSite =
        (typeof site === 'string' && site !== 'same-origin' && site !== 'none') ||
        (typeof origin === 'string' && origin !== `${request.protocol}://${request.host}`);
      if (request.method !== 'GET' && request.method !== 'HEAD' && crossSite) {
        await reply
          .status(403)
          .send({ statusCode: 403, message: 'cross-site requests to the dashboard are refused' });
        return;
      }
      const principal = await auth.authenticate(request.headers.authorization, { basic: true });
      if (principal?.scopes.includes('queues:admin')) {
        // The matched route, as above: an encoded path reaches the same handler.
        if ((request.routeOptions.url ?? decodedPath(request.url)).startsWith(DASHBOARD_API))
          await withinDeadline(reply);
        return;
      }
      await reply
        .status(principal ? 403 : 401)
        .header('WWW-Authenticate', 'Basic realm="Session Revoker dashboard", charset="UTF-8"')
        .header('Cache-Control', 'no-store')
        .send({
          statusCode: principal ? 403 : 401,
          message: principal ? 'this needs the queues:admin scope' : 'log in with an admin API key',
        });
    });
    // Every 503 of the dashboard says when to come back, like the rest of the service's.
    scope.addHook('onSend', (_request, reply, payload, done) => {
      if (reply.statusCode === 503)
        void reply.header('Retry-After', String(RETRY_AFTER_SECONDS)).header('Cache-Control', 'no-store');
      done(null, payload);
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

  return app;
}
