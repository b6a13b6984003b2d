import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfigOrExit } from '#config';
import { RevokerMetrics } from '#metrics';
// The embedded worker: the one place an app imports another (see eslint.config.js).
import { warmUpWorker } from '../../worker/src/warm-up.js';
import { WorkerModule } from '../../worker/src/worker.module.js';
import { PinoNestLogger } from '#logging';
import { configureGateway, gatewayAdapter, gatewayLogger } from './gateway.app.js';
import { logWarmUp, silenceWarmUpRequests, warmUpGateway } from './http/warm-up.js';
import { GatewayModule } from './gateway.module.js';

/**
 * The gateway, and by default the worker in the same process (two Nest apps sharing one metrics
 * registry): one command gives a newcomer the whole service; EMBEDDED_WORKER=false scales them apart.
 */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const metrics = new RevokerMetrics({ defaultMetrics: true });
  const logger = gatewayLogger(config);
  const nestLogger = new PinoNestLogger(logger);
  const worker = config.embeddedWorker
    ? await NestFactory.createApplicationContext(WorkerModule.forRoot(config, { metrics }), {
        logger: nestLogger,
      })
    : undefined;
  if (worker) logWarmUp(logger, 'embedded worker', await warmUpWorker(worker));
  const app = await NestFactory.create<NestFastifyApplication>(
    GatewayModule.forRoot(config, { metrics }),
    gatewayAdapter(config, logger),
    { bodyParser: false, logger: nestLogger },
  );
  await configureGateway(app, config);
  const warmUpToken = silenceWarmUpRequests(app);
  // SIGTERM: stop taking HTTP first, then let the worker drain, then exit 0. One handler for both apps,
  // so neither ends the process while the other is still closing.
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info(`${signal}: shutting down`);
    void (async () => {
      await app.close();
      await worker?.close();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  // Ready (listening: /health/ready answers) only once the delivery path runs warm (see warmUpGateway).
  await app.init();
  logWarmUp(logger, 'webhook path', await warmUpGateway(app, config, warmUpToken));
  await app.listen(config.port, '0.0.0.0');
  logger.info(
    `gateway listening on http://localhost:${config.port}${config.embeddedWorker ? ' (worker embedded)' : ''}`,
  );
}

bootstrap().catch((err: unknown) => {
  console.error(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
