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
import { type DynamicModule, Inject, Injectable, Module, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig, ConfigModule } from '#config';
import { RevokerMetrics } from '#metrics';
import { ALL_QUEUES, assertQueueRedisPolicy } from '#revocation';
import { MaintenanceProcessor } from './maintenance.processor.js';
import { RevocationExecutor } from './revocation.executor.js';
import { RevocationProcessor } from './revocation.processor.js';
import {
  SESSION_REDIS,
  SessionRedisCloser,
  sessionRedisProvider,
  sessionStoreProvider,
} from './session-store.provider.js';
import { WORKER_QUEUE_REDIS, WorkerQueueRedisCloser, workerQueueRedisProvider } from './worker-redis.js';

@Module({
  providers: [workerQueueRedisProvider, WorkerQueueRedisCloser],
  exports: [WORKER_QUEUE_REDIS],
})
class WorkerRedisModule {}

/** Refuses to start on a queue Redis that may evict BullMQ's keys (unless told otherwise). */
@Injectable()
class QueuePolicyCheck implements OnModuleInit {
  constructor(
    @Inject(WORKER_QUEUE_REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    await assertQueueRedisPolicy(this.redis, this.config.allowEvictingQueueRedis);
  }
}

/** Executes revocations, fans out groups, sweeps the index and watches Redis memory. */
@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig, options: { metrics?: RevokerMetrics } = {}): DynamicModule {
    const metrics = options.metrics ?? new RevokerMetrics();
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        WorkerRedisModule,
        BullModule.forRootAsync({
          imports: [WorkerRedisModule],
          inject: [WORKER_QUEUE_REDIS],
          useFactory: (redis: Redis) => ({ connection: redis, prefix: config.redis.queuePrefix }),
        }),
        BullModule.registerQueue(...ALL_QUEUES.map((name) => ({ name }))),
        TerminusModule.forRoot({ logger: false }),
      ],
      controllers: [HealthController, MetricsController],
      providers: [
        { provide: RevokerMetrics, useValue: metrics },
        {
          provide: HEALTH_TARGETS,
          inject: [WORKER_QUEUE_REDIS, SESSION_REDIS, ...ALL_QUEUES.map((q) => getQueueToken(q))],
          useFactory: (queue: Redis, sessions: Redis, ...queues: Queue[]) => {
            const targets = { queue, sessions, queuePrefix: config.redis.queuePrefix, queues };
            connectMetricSources(metrics, targets);
            return targets;
          },
        },
        queueErrorLogs(WORKER_QUEUE_REDIS),
        QueuePolicyCheck,
        sessionRedisProvider,
        sessionStoreProvider,
        SessionRedisCloser,
        RevocationExecutor,
        RevocationProcessor,
        MaintenanceProcessor,
      ],
      exports: [RevokerMetrics],
    };
  }
}
