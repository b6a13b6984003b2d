import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '#config';

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
}
