import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import request from 'supertest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { uniquePrefix, waitFor } from '../support/redis.js';
import { type OwnRedis, startOwnRedis } from '../support/reliability-redis.js';

/**
 * The queue dashboard's API when its Redis is there but will not serve: busy in a script (an error
 * reply), or paused (no reply at all). Like the admin API, it must answer 503 with Retry-After, not
 * 500 and not hang. Its own redis-server, since both states stop every client of it.
 */

const KEY = 'dashboard-redis-key-0123456789';
const ENQUEUE_TIMEOUT_MS = 250;
/** The admin deadline for these settings: twice ENQUEUE_TIMEOUT_MS plus a second. */
const DEADLINE_MS = 2 * ENQUEUE_TIMEOUT_MS + 1000;
const API = '/admin/queues/api/queues';

/** What a client is told: the status, when to come back, and why. */
const answer = (res: request.Response) => ({
  status: res.status,
  retryAfter: res.headers['retry-after'],
  message: (res.body as { message?: string }).message,
});
const unavailable = (message: string) => ({
  status: 503,
  retryAfter: expect.stringMatching(/^\d+$/),
  message,
});

describe('dashboard API when its Redis will not serve', () => {
  let server: OwnRedis;
  let gw: TestGateway;
  let control: Redis;

  beforeAll(async () => {
    server = await startOwnRedis('dash');
    control = new Redis({ port: server.port });
    gw = await startGateway({
      REDIS_URL: server.url,
      QUEUE_PREFIX: `{${uniquePrefix('dash-redis')}}`,
      SESSION_TAG_SECRET: 'dashboard-redis-tag-secret-0123',
      ADMIN_API_KEY: KEY,
      ENQUEUE_TIMEOUT_MS: String(ENQUEUE_TIMEOUT_MS),
    });
  });
  afterAll(async () => {
    await gw?.close();
    control?.disconnect();
    await server?.stop();
  });

  const api = () =>
    request(gw.app.getHttpServer())
      .get(API)
      .query({ activeQueue: 'revocations', page: '1', jobsPerPage: '10' })
      .auth('admin', KEY);

  it('serves the queues while Redis does', async () => {
    const res = await api();
    expect(res.status).toBe(200);
    expect((res.body as { queues: { name: string }[] }).queues.map((q) => q.name)).toContain('revocations');
  });

  it('answers 503 with Retry-After while Redis answers BUSY, and 200 again once it is free', async () => {
    await control.config('SET', 'busy-reply-threshold', '20');
    // Both connected before the script starts: a client whose handshake meets BUSY treats it as fatal
    // and reconnects for ever, and the check below would then wait on it past the test's timeout.
    const busy = new Redis({ port: server.port });
    const killer = new Redis({ port: server.port });
    await Promise.all([busy.ping(), killer.ping()]);
    // Spins until SCRIPT KILL: every other client gets BUSY meanwhile.
    const spinning = busy.eval('while true do end', 0).catch((err: Error) => err.message);
    try {
      await waitFor(
        async () => /^BUSY/.test(await killer.ping().catch((err: Error) => err.message)),
        'Redis to answer BUSY',
      );
      expect(answer(await api())).toEqual(unavailable('Redis is unavailable; retry later'));
    } finally {
      // Whatever happened above, the script must not outlive the test.
      await killer.script('KILL').catch(() => undefined);
      killer.disconnect();
      expect(await spinning).toMatch(/killed/i);
      busy.disconnect();
    }
    expect((await api()).status).toBe(200);
  });

  it('answers 503 at the admin deadline while Redis is paused, and 200 again once it is not', async () => {
    const pauseMs = DEADLINE_MS + 1500;
    await control.client('PAUSE', pauseMs, 'ALL');
    const pausedAt = Date.now();
    const res = await api();
    const took = Date.now() - pausedAt;
    expect(answer(res)).toEqual(unavailable('Redis did not answer in time; retry later'));
    // Not before the deadline (a slow Redis gets its time), and not held until the pause ends.
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(took).toBeLessThan(pauseMs);
    await waitFor(async () => (await api()).status === 200, 'the dashboard to answer after the pause');
  });
});
