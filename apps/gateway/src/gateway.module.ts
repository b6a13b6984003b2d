import { BullModule, getQueueToken } from '@nestjs/bullmq';
import { TerminusModule } from '@nestjs/terminus';
import type { Queue } from 'bullmq';
import {
  connectMetricSources,
  HEALTH_TARGETS,
  HealthController,
  MetricsController,
  queueErrorLogs,
} from '#health';
import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { Redis } from 'ioredis';
import { type AppConfig, ConfigModule } from '#config';
import { RevokerMetrics } from '#metrics';
import { ALL_QUEUES } from '#revocation';
import { AdminAuditInterceptor } from './admin/admin-audit.interceptor.js';
import { AdminDeadlineInterceptor } from './admin/admin-deadline.interceptor.js';
import { AdminAuthService } from './admin/admin-auth.service.js';
import { AdminController } from './admin/admin.controller.js';
import { AdminGuard } from './admin/admin.guard.js';
import { AdminService } from './admin/admin.service.js';
import { GATEWAY_SESSION_REDIS, gatewaySessionStoreProviders } from './admin/session-store.provider.js';
import { QUEUE_REDIS, QueueRedisLifecycle, queueRedisProvider } from './queue-redis.provider.js';
import { IngestService } from './webhooks/ingest.service.js';
import { BackchannelLogoutController, SsfController } from './webhooks/jwt-webhook.controllers.js';
import { PingOneAuthGuard } from './webhooks/pingone-auth.guard.js';
import { PingOneWebhookController } from './webhooks/pingone-webhook.controller.js';
import { QuarantineService } from './webhooks/quarantine.service.js';
import { RedisUnavailableFilter } from './redis-unavailable.js';

/** Shares the queue Redis client with BullMQ's Queue (which then leaves closing it to us). */
@Module({ providers: [queueRedisProvider, QueueRedisLifecycle], exports: [QUEUE_REDIS] })
class QueueRedisModule {}

/** HTTP in: authenticate, parse and normalise every source, then enqueue durably. */
@Module({})
export class GatewayModule {
  static forRoot(config: AppConfig, options: { metrics?: RevokerMetrics } = {}): DynamicModule {
    const metrics = options.metrics ?? new RevokerMetrics();
    return {
      module: GatewayModule,
      imports: [
        ConfigModule.forRoot(config),
        QueueRedisModule,
        BullModule.forRootAsync({
          imports: [QueueRedisModule],
          inject: [QUEUE_REDIS],
          useFactory: (redis: Redis) => ({ connection: redis, prefix: config.redis.queuePrefix }),
        }),
        BullModule.registerQueue(...ALL_QUEUES.map((name) => ({ name }))),
        TerminusModule.forRoot({ logger: false }),
      ],
      controllers: [
        HealthController,
        MetricsController,
        PingOneWebhookController,
        BackchannelLogoutController,
        SsfController,
        AdminController,
      ],
      providers: [
        { provide: RevokerMetrics, useValue: metrics },
        IngestService,
        QuarantineService,
        PingOneAuthGuard,
        AdminAuthService,
        AdminGuard,
        AdminService,
        AdminAuditInterceptor,
        AdminDeadlineInterceptor,
        ...gatewaySessionStoreProviders,
        {
          provide: HEALTH_TARGETS,
          inject: [QUEUE_REDIS, GATEWAY_SESSION_REDIS, ...ALL_QUEUES.map((q) => getQueueToken(q))],
          useFactory: (queue: Redis, sessions: Redis | null, ...queues: Queue[]) => {
            const targets = { queue, sessions, queuePrefix: config.redis.queuePrefix, queues };
            connectMetricSources(metrics, targets);
            return targets;
          },
        },
        { provide: APP_FILTER, useClass: RedisUnavailableFilter },
        queueErrorLogs(QUEUE_REDIS),
      ],
    };
  }
}
