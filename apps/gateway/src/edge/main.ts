import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfigOrExit } from '#config';
import { PinoNestLogger } from '#logging';
import { RevokerMetrics } from '#metrics';
import { gatewayAdapter, gatewayLogger } from '../http/fastify-adapter.js';
import { configureEdge, EdgeAppModule } from './edge.app.js';

/**
 * The edge alone (`npm run start:edge`): forward auth and the login on PORT, reading the sessions the
 * gateway's worker revokes. Run as many as user traffic needs; the gateway keeps the IdP events.
 */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = gatewayLogger(config);
  const app = await NestFactory.create<NestFastifyApplication>(
    EdgeAppModule.forRoot(config, { metrics: new RevokerMetrics({ defaultMetrics: true }) }),
    gatewayAdapter(config, logger),
    { bodyParser: false, logger: new PinoNestLogger(logger) },
  );
  configureEdge(app, config);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info(`${signal}: shutting down`);
    void app.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await app.listen(config.port, '0.0.0.0');
  logger.info(`edge listening on http://localhost:${config.port}`);
}

bootstrap().catch((err: unknown) => {
  console.error(`edge failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
