import { FastifyAdapter } from '@nestjs/platform-fastify';
import { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import type { AppConfig } from '#config';
import { createLogger, requestId } from '#logging';

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

/**
 * The pino logger of the gateway: redacted, including the configured webhook secret header; JSON, or
 * lines for a person as LOG_FORMAT says (`auto`: pretty when `stream`, else stdout, is a terminal).
 */
export function gatewayLogger(config: AppConfig, stream?: DestinationStream): Logger {
  return createLogger(
    config.logLevel,
    stream,
    [`req.headers["${config.pingone.authHeader}"]`],
    config.logFormat,
  );
}

/** How often Node looks for requests past their timeouts (its default, 30 s, lets them run that long). */
const TIMEOUT_CHECK_MS = 1000;

/**
 * The Fastify adapter: the body limit from config (bodies over it get 413 before any route runs),
 * request and header timeouts (a slow or unfinished request gets 408 and its connection is closed,
 * so it cannot hold a connection and its buffered bytes), the trusted proxies, and request logs
 * carrying a request id (the caller's x-request-id, else a new one).
 */
export function gatewayAdapter(config: AppConfig, logger: Logger = gatewayLogger(config)): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: config.webhookBodyLimit,
    requestTimeout: config.http.requestTimeoutMs,
    http: { headersTimeout: config.http.headersTimeoutMs, connectionsCheckingInterval: TIMEOUT_CHECK_MS },
    // Only a configured proxy's X-Forwarded-For names the client (request.ip, the rate limits' key).
    ...(config.http.trustedProxies.length ? { trustProxy: config.http.trustedProxies } : {}),
    // Ids in paths may be 256 characters (the session store's limit), more once percent-encoded.
    routerOptions: { maxParamLength: 2048 },
    loggerInstance: logger,
    genReqId: requestId,
    logController: new OneLineRequestLog(),
  });
}

/** Every answer carries its request id, as the log lines do. */
export function echoRequestId(fastify: FastifyInstance): void {
  // Callback-style: it runs on every webhook delivery, and an async hook costs a promise each.
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
}
