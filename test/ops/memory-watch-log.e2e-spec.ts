import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { loadConfig } from '#config';
import { QueueKeys } from '#revocation';
import { MaintenanceProcessor } from '../../apps/worker/src/maintenance.processor.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';

/**
 * The memory watch against a real session Redis whose limit the test moves: each condition (no
 * maxmemory, near it, back under) is said once when it starts, however many checks see it.
 */
describe('memory watch: a condition that holds is logged once, and again when it changes', () => {
  let sessions: OwnRedis;
  let queue: Redis;
  let processor: MaintenanceProcessor;
  const said: string[] = [];
  const prefix = `{${uniquePrefix('memlog')}}`;

  beforeAll(async () => {
    sessions = await startOwnRedis('memlog', ['--maxmemory-policy', 'noeviction']);
    queue = new Redis(REDIS_URL);
    const config = loadConfig({
      REDIS_URL: sessions.url,
      QUEUE_REDIS_URL: REDIS_URL,
      QUEUE_PREFIX: prefix,
      MEMORY_WARN_FRACTION: '0.9',
    });
    // watchMemory needs the two Redis clients, the settings and the keys: not the queue or the store.
    processor = new MaintenanceProcessor(
      undefined as never,
      undefined as never,
      sessions.client,
      queue,
      config,
      new QueueKeys(prefix),
    );
    const logger = (processor as unknown as { logger: Logger }).logger;
    jest.spyOn(logger, 'warn').mockImplementation((m: unknown) => void said.push(`warn ${String(m)}`));
    jest.spyOn(logger, 'log').mockImplementation((m: unknown) => void said.push(`log ${String(m)}`));
  });
  afterAll(async () => {
    await deletePrefix(queue, prefix);
    queue.disconnect();
    await sessions?.stop();
  });

  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await sessions.client.info('memory'))![1]);
  const setMaxmemory = (bytes: number) => sessions.client.config('SET', 'maxmemory', String(bytes));
  /** Runs `n` checks, as the scheduler would, and returns what they said. */
  const checks = async (n: number) => {
    const from = said.length;
    for (let i = 0; i < n; i++) await processor.watchMemory();
    return said.slice(from);
  };

  it('no maxmemory: one warning over several checks', async () => {
    expect(await checks(4)).toEqual([
      'warn the session Redis has no maxmemory set: it can grow until the machine runs out',
    ]);
    // The readings are still recorded at every check, for /health/ready and the metrics.
    const readings = JSON.parse((await queue.get(new QueueKeys(prefix).memory))!) as { role: string }[];
    expect(readings.map((r) => r.role)).toEqual(['sessions', 'queue']);
  });

  it('a maxmemory set, far from it: one line saying so, no warning', async () => {
    await setMaxmemory((await usedMemory()) * 50);
    expect(await checks(3)).toEqual([expect.stringMatching(/^log the session Redis has a maxmemory now/)]);
  });

  it('over the warn fraction: one warning; back under: one line', async () => {
    // Just above what it uses: about 98% full, whatever the next checks add.
    await setMaxmemory(Math.ceil((await usedMemory()) * 1.02));
    expect(await checks(4)).toEqual([
      expect.stringMatching(/^warn sessions Redis uses \d+ of \d+ bytes \(over 90%\)$/),
    ]);
    await setMaxmemory((await usedMemory()) * 50);
    expect(await checks(3)).toEqual([
      expect.stringMatching(/^log sessions Redis is back under 90% of its maxmemory/),
    ]);
  });

  it('the limit removed again: warned again, once', async () => {
    await setMaxmemory(0);
    expect(await checks(3)).toEqual([
      'warn the session Redis has no maxmemory set: it can grow until the machine runs out',
    ]);
    expect(said.filter((l) => l.startsWith('warn'))).toHaveLength(3);
    expect(said).toHaveLength(5);
  });
});
