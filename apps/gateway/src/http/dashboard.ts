import { createBullBoard } from '@bull-board/api';
import type { HTTPStatus } from '@bull-board/api/typings/app';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter as BullBoardFastifyAdapter } from '@bull-board/fastify';
import { getQueueToken } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Queue } from 'bullmq';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '#config';
import { isRedisUnavailable, QUEUE_REDIS, type RedisClient } from '#redis';
import { ALL_QUEUES } from '#revocation';
import { AdminAuthService } from '../admin/admin-auth.service.js';
import {
  adminDeadlineMs,
  REDIS_TIMEOUT_MESSAGE,
  REDIS_UNAVAILABLE_BODY,
  RETRY_AFTER_SECONDS,
} from './redis-unavailable.js';
import { routedPath } from './route-path.js';

export const DASHBOARD_PATH = '/admin/queues';
/** The dashboard's JSON API (its page and static files do not touch Redis). */
const DASHBOARD_API = `${DASHBOARD_PATH}/api/`;

type DashboardErrorHandler = Parameters<BullBoardFastifyAdapter['setErrorHandler']>[0];

/**
 * bull-board's Fastify adapter, answering a Redis connection error with 503 (its own handler says 500,
 * as for a bug). Other errors keep bull-board's answer.
 */
class DashboardAdapter extends BullBoardFastifyAdapter {
  private readonly log = new Logger('Redis');

  override setErrorHandler(handler: DashboardErrorHandler): this {
    return super.setErrorHandler((error) => {
      if (!isRedisUnavailable(error)) return handler(error);
      this.log.warn(`a dashboard request met Redis unavailable: ${error.message}`);
      // bull-board's status type lists only the codes it answers itself; Fastify sends any.
      return { status: 503 as HTTPStatus, body: REDIS_UNAVAILABLE_BODY };
    });
  }
}

/**
 * A write that says it comes from another site. The browser replays its Basic login on cross-site
 * requests too (CSRF); clients that send no such header are not browsers.
 */
function isCrossSiteWrite(request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false;
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  return (
    (typeof site === 'string' && site !== 'same-origin' && site !== 'none') ||
    (typeof origin === 'string' && origin !== `${request.protocol}://${request.host}`)
  );
}

/**
 * The bull-board dashboard at /admin/queues, behind the admin credentials in its own Fastify hook
 * (Nest guards do not run on it); a browser gets HTTP Basic (any user name, the API key as password).
 *
 * Its API reads the queues through BullMQ, which waits for as long as its Redis is not connected, and
 * a stalled Redis may never answer: without Redis it answers 503 at once, and a call still unanswered
 * at the admin deadline gets 503 then (what bull-board answers later is dropped).
 */
export async function mountDashboard(app: NestFastifyApplication, config: AppConfig): Promise<void> {
  const fastify = app.getHttpAdapter().getInstance();
  const auth = app.get(AdminAuthService);
  const queueRedis = app.get<RedisClient>(QUEUE_REDIS, { strict: false });
  const board = new DashboardAdapter();
  board.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: ALL_QUEUES.map(
      (name) => new BullMQAdapter(app.get<Queue>(getQueueToken(name), { strict: false })),
    ),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'Session Revoker' } },
  });

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
      if (isCrossSiteWrite(request)) {
        await reply
          .status(403)
          .send({ statusCode: 403, message: 'cross-site requests to the dashboard are refused' });
        return;
      }
      const principal = await auth.authenticateRequest(request, { basic: true });
      if (principal?.scopes.includes('queues:admin')) {
        if (routedPath(request).startsWith(DASHBOARD_API)) await withinDeadline(reply);
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
}
