import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';
import type { MemoryReading } from '#metrics';
import { QueueKeys } from '#revocation';

const MAXMEMORY = 2 * 1024 * 1024;

describe('memory watch: a session Redis near its maxmemory is reported degraded', () => {
  let redis: OwnRedis;
  let q: TestQueue;
  let worker: TestWorker;
  let memoryKey: string;

  beforeAll(async () => {
    redis = await startOwnRedis('mem', [
      '--maxmemory',
      String(MAXMEMORY),
      '--maxmemory-policy',
      'noeviction',
    ]);
    const env = {
      REDIS_URL: redis.url,
      QUEUE_REDIS_URL: REDIS_URL,
      QUEUE_PREFIX: `{${uniquePrefix('mem-q')}}`,
      SESSION_PREFIX: uniquePrefix('mem-s'),
      MEMORY_WATCH_EVERY_MS: '1000',
    };
    memoryKey = new QueueKeys(env.QUEUE_PREFIX).memory;
    q = openQueue(env);
    worker = await startWorker(env);
  });
  afterAll(async () => {
    await worker?.close();
    await q?.close();
    await redis?.stop();
  });

  /** The first reading recorded at or after `since` (the readings are replaced every period). */
  const readingAfter = async (since: number): Promise<MemoryReading[]> =>
    (await waitFor(
      async () => {
        const raw = await q.redis.get(memoryKey);
        const readings = raw ? (JSON.parse(raw) as MemoryReading[]) : [];
        return readings.length > 0 && readings.every((r) => r.checkedAt >= since) ? readings : undefined;
      },
      'a fresh memory reading',
      10_000,
    ))!;

  it('fills the session Redis until it refuses writes: the sessions role reads degraded, the queue role not', async () => {
    const value = 'x'.repeat(16 * 1024);
    let oom: Error | undefined;
    for (let i = 0; i < 1000 && !oom; i++)
      await redis.client.set(`fill:${i}`, value).catch((err: Error) => (oom = err));
    expect(oom?.message).toMatch(/OOM/);
    const filledAt = Date.now();

    const readings = await readingAfter(filledAt);
    const sessions = readings.find((r) => r.role === 'sessions')!;
    expect(sessions).toMatchObject({
      maxmemory: MAXMEMORY,
      policy: 'noeviction',
      degraded: true,
      evictedKeys: 0,
    });
    expect(sessions.usedMemory).toBeGreaterThan(0.9 * MAXMEMORY);
    expect(sessions.oomErrors).toBeGreaterThanOrEqual(1);
    expect(sessions.fragmentationRatio).toBeGreaterThan(0);
    // The shared queue Redis has no maxmemory: never degraded, whatever it holds.
    expect(readings.find((r) => r.role === 'queue')).toMatchObject({ maxmemory: 0, degraded: false });
  });

  it('reads healthy again once memory is freed', async () => {
    await redis.client.flushall();
    const readings = await readingAfter(Date.now());
    expect(readings.find((r) => r.role === 'sessions')).toMatchObject({
      maxmemory: MAXMEMORY,
      degraded: false,
    });
  });
});
