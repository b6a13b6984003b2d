import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AppConfig } from '#config';

/** The Fastify adapter with the body limit from config (bodies over it get 413 before any route runs). */
export function gatewayAdapter(config: AppConfig): FastifyAdapter {
  return new FastifyAdapter({ bodyLimit: config.webhookBodyLimit });
}

/**
 * Bodies stay bytes until a route decides what they are: PingOne's JSON must be quarantined, not
 * refused, when it does not parse; back-channel logout is a form; SSF is a JWT. One place for
 * production and tests alike, so a supertest test behaves like the real service.
 */
export function configureGateway(app: NestFastifyApplication, config: AppConfig): NestFastifyApplication {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: config.webhookBodyLimit },
    (_req, body, done) => done(null, body),
  );
  app.enableShutdownHooks();
  return app;
}
