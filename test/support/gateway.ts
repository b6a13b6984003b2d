import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type AppConfig, loadConfig } from '#config';
import { REVOCATION_QUEUE, type RevocationCommand } from '#revocation';
import { Writable } from 'node:stream';
import { PinoNestLogger } from '#logging';
import { configureGateway, gatewayAdapter, gatewayLogger } from '../../apps/gateway/src/gateway.app.js';
import { GatewayModule } from '../../apps/gateway/src/gateway.module.js';
import { deletePrefix, REDIS_URL } from './redis.js';

export interface TestGateway {
  app: NestFastifyApplication;
  config: AppConfig;
  /** A separate client of the queue, for assertions. */
  queue: Queue;
  redis: Redis;
  /** The commands currently on the queue, in any state. */
  commands(): Promise<RevocationCommand[]>;
  close(): Promise<void>;
}

/** Log lines as the gateway writes them (JSON, one a line), kept for a test to inspect. */
export function logLines(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

/**
 * The real gateway module on Fastify, configured and ready as main.ts makes it (not listening).
 * With `logs`, its request log lines (and with `nestLogs`, Nest's own) go there at config.logLevel.
 */
export async function bootGateway(
  config: AppConfig,
  options: { logs?: Writable; nestLogs?: boolean } = {},
): Promise<NestFastifyApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [GatewayModule.forRoot(config)] }).compile();
  const logger = options.logs ? gatewayLogger(config, options.logs) : undefined;
  const app = moduleRef.createNestApplication<NestFastifyApplication>(gatewayAdapter(config, logger), {
    logger: logger && options.nestLogs ? new PinoNestLogger(logger) : false,
    bodyParser: false,
  });
  try {
    await configureGateway(app, config);
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return app;
}

/** Boots the real gateway module on Fastify, as main.ts does, with test settings over the defaults. */
export async function startGateway(env: Record<string, string>): Promise<TestGateway> {
  const config = loadConfig({ REDIS_URL, LOG_LEVEL: 'silent', ...env });
  const app = await bootGateway(config);
  const redis = new Redis(config.redis.queueUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(REVOCATION_QUEUE, { connection: redis, prefix: config.redis.queuePrefix });
  return {
    app,
    config,
    queue,
    redis,
    async commands() {
      const jobs = await queue.getJobs([
        'waiting',
        'active',
        'completed',
        'failed',
        'delayed',
        'prioritized',
      ]);
      return jobs.map((j) => j.data as RevocationCommand);
    },
    async close() {
      // Bounded: a test may have pointed the gateway at a Redis that is not there.
      const within = (work: Promise<unknown>) =>
        Promise.race([work.catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
      await within(app.close());
      await within(
        (async () => {
          await queue.obliterate({ force: true });
          await deletePrefix(redis, config.redis.queuePrefix);
          await queue.close();
        })(),
      );
      redis.disconnect();
    },
  };
}

/** Closes a gateway whose Redis is gone (TestGateway.close() would wait to delete its keys there). */
export async function closeWithoutRedis(gw: TestGateway): Promise<void> {
  await gw.app.close();
  await gw.queue.close().catch(() => undefined);
  gw.redis.disconnect();
}
