import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import { loadConfigOrExit } from '#config';
import { createLogger, PinoNestLogger, requestId } from '#logging';
import { RevokerMetrics } from '#metrics';
import { describeWarmUp } from '#revocation';
import { warmUpWorker } from './warm-up.js';
import { WorkerModule } from './worker.module.js';

/** A standalone worker: revocations and scheduled jobs, with /health and /metrics on WORKER_PORT. */
async function bootstrap(): Promise<void> {
  const config = loadConfigOrExit();
  const metrics = new RevokerMetrics({ defaultMetrics: true });
  const logger = createLogger(config.logLevel, undefined, [], config.logFormat);
  const app = await NestFactory.create<NestFastifyApplication>(
    WorkerModule.forRoot(config, { metrics }),
    new FastifyAdapter({
      loggerInstance: logger,
      genReqId: requestId,
      // Health probes and scrapes only: no request log lines.
      logController: new LogController({ disableRequestLogging: true }),
    }),
    { logger: new PinoNestLogger(logger) },
  );
  // SIGTERM: drain (see RevocationProcessor), close, then exit 0 rather than re-raising the signal.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  // Started (its workers take jobs) before the warm-up, which runs before /health answers: ready means
  // warm and fetching (see warmUpWorker).
  await app.init();
  const warm = await warmUpWorker(app);
  if (warm.stopped === 'failed') logger.warn(describeWarmUp('worker', warm));
  else logger.info(describeWarmUp('worker', warm));
  await app.listen(config.workerPort, '0.0.0.0');
  logger.info(`worker started (health and metrics on http://localhost:${config.workerPort})`);
}

bootstrap().catch((err: unknown) => {
  console.error(`worker failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
