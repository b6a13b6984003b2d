import { NestFactory } from '@nestjs/core';
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
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), { logger: false });
  return { app, config, close: () => app.close() };
}
