import { type DynamicModule, Module } from '@nestjs/common';
import type { AppConfig } from '#config';
import { ServiceModule } from '#health';
import type { RevokerMetrics } from '#metrics';
import { MaintenanceProcessor } from './maintenance.processor.js';
import { RevocationExecutor } from './revocation.executor.js';
import { RevocationProcessor } from './revocation.processor.js';

/** Executes revocations, fans out groups, sweeps the index and watches Redis memory. */
@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig, options: { metrics?: RevokerMetrics } = {}): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ServiceModule.forRoot(config, {
          ...options,
          // BullMQ workers need `maxRetriesPerRequest: null` (their blocking calls must wait out a
          // reconnect rather than fail), and they duplicate the client for blocking.
          queueRedis: { client: { maxRetriesPerRequest: null } },
          // A session Redis that is down should fail the job attempt fast (it is retried with backoff).
          sessionRedis: { client: { maxRetriesPerRequest: 2 } },
          sessionStore: 'required',
        }),
      ],
      providers: [RevocationExecutor, RevocationProcessor, MaintenanceProcessor],
    };
  }
}
