import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../support/gateway.js';
import { freePorts, startRedisServer, uniquePrefix, type RedisProcess } from '../support/redis.js';
import { startWorker } from '../support/worker.js';

describe('start-up refuses an evicting queue Redis', () => {
  let server: RedisProcess;
  let dir: string;
  let url: string;
  const env = () => ({
    REDIS_URL: url,
    QUEUE_PREFIX: `{${uniquePrefix('policy')}}`,
    PINGONE_WEBHOOK_SECRET: 'x',
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sr-policy-'));
    const [port] = await freePorts(1);
    server = await startRedisServer(port!, dir, ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    url = `redis://127.0.0.1:${port}`;
  });
  afterAll(() => {
    server.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('the worker says why and how to fix it', async () => {
    await expect(startWorker(env())).rejects.toThrow(
      /maxmemory-policy allkeys-lru.*noeviction.*ALLOW_EVICTING_QUEUE_REDIS/s,
    );
  });

  it('the gateway says the same', async () => {
    await expect(startGateway(env())).rejects.toThrow(/noeviction/);
  });

  it('runs anyway when explicitly overridden', async () => {
    const worker = await startWorker({ ...env(), ALLOW_EVICTING_QUEUE_REDIS: 'true' });
    await worker.close();
  });
});
