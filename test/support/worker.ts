import { Test } from '@nestjs/testing';
import type { INestApplicationContext } from '@nestjs/common';
import { type AppConfig, loadConfig } from '#config';
import { WorkerModule } from '../../apps/worker/src/worker.module.js';
import { REDIS_URL } from './redis.js';

export interface TestWorker {
  app: INestApplicationContext;
  config: AppConfig;
  close(): Promise<void>;
}

/** Boots the real worker module in this process, as apps/worker/src/main.ts does. */
export async function startWorker(env: Record<string, string>): Promise<TestWorker> {
  const config = loadConfig({ REDIS_URL, SESSION_TAG_SECRET: 'test-tag-secret-0123456789', ...env });
  const app = await Test.createTestingModule({ imports: [WorkerModule.forRoot(config)] }).compile();
  app.useLogger(false);
  try {
    await app.init();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return { app, config, close: () => app.close() };
}
