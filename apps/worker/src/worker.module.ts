import { BullModule } from '@nestjs/bullmq';
import { type DynamicModule, Inject, Injectable, Module, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig, ConfigModule } from '#config';
import { RevokerMetrics } from '#metrics';
import { assertQueueRedisPolicy, REVOCATION_QUEUE } from '#revocation';
import { MAINTENANCE_QUEUE, MaintenanceProcessor } from './maintenance.processor.js';
import { RevocationExecutor } from './revocation.executor.js';
import { RevocationProcessor } from './revocation.processor.js';
import { SessionRedisCloser, sessionRedisProvider, sessionStoreProvider } from './session-store.provider.js';
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
        BullModule.registerQueue({ name: REVOCATION_QUEUE }, { name: MAINTENANCE_QUEUE }),
      ],
      providers: [
        { provide: RevokerMetrics, useValue: options.metrics ?? new RevokerMetrics() },
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
