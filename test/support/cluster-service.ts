import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { type AppConfig, loadConfig } from '#config';
import { ALL_QUEUES } from '#revocation';
import { configureGateway, gatewayAdapter } from '../../apps/gateway/src/gateway.app.js';
import { GatewayModule } from '../../apps/gateway/src/gateway.module.js';

export interface InProcessGateway {
  app: NestFastifyApplication;
  config: AppConfig;
  close(): Promise<void>;
}

/**
 * The real gateway module on Fastify, as main.ts builds it, on whatever Redis `env` names (a cluster
 * with REDIS_CLUSTER=true). Unlike startGateway in gateway.ts it opens no standalone client of its own
 * for assertions (that would get MOVED on a cluster): open queues with `openQueues`.
 */
export async function startInProcessGateway(env: Record<string, string>): Promise<InProcessGateway> {
  const config = loadConfig({ LOG_LEVEL: 'silent', EMBEDDED_WORKER: 'false', ...env });
  const moduleRef = await Test.createTestingModule({ imports: [GatewayModule.forRoot(config)] }).compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(gatewayAdapter(config), {
    logger: false,
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
  return { app, config, close: () => app.close() };
}

/** The service's three queues (revocations, revocations-priority, maintenance) on `connection`. */
export function openQueues(connection: Redis | Cluster, prefix: string): Record<string, Queue> {
  return Object.fromEntries(
    ALL_QUEUES.map((name) => {
      const queue = new Queue(name, { connection, prefix });
      queue.on('error', () => undefined);
      return [name, queue];
    }),
  );
}
