import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { AuditLog, QueueKeys } from '#revocation';
import { SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';

/**
 * Finding 9 of the black-box attack: a group revocation read the whole group index in one Lua call
 * (64.6 ms of Redis blocked at 100k members) and wrote one audit entry per member (the whole cap).
 */
const TAG_SECRET = 'hardening-groups-tag-secret-0123';

describe('hardening: a group revocation is read in bounded batches', () => {
  let own: OwnRedis;
  let store: SessionStore;

  beforeAll(async () => {
    // Every command over 10 ms goes to the slow log.
    own = await startOwnRedis('harden-grp', ['--slowlog-log-slower-than', '10000']);
    store = new SessionStore({ redis: own.client, prefix: 'hg', tagSecret: TAG_SECRET });
  }, 30_000);
  afterAll(() => own?.stop());

  it('reads a group of 100,000 members with no Redis command over 10 ms, and finds every one', async () => {
    // The group index as logins write it (member: the user id, score: the latest expiry).
    const key = store.keys.group('big');
    const expiresAt = Date.now() + 3_600_000;
    for (let i = 0; i < 100_000; i += 5000) {
      const pipeline = own.client.pipeline();
      for (let j = i; j < i + 5000; j++) pipeline.zadd(key, expiresAt, `user-${j}`);
      await pipeline.exec();
    }
    await own.client.call('SLOWLOG', 'RESET');

    const { users } = await store.revokeGroup('big');

    expect(users).toHaveLength(100_000);
    expect(new Set(users).size).toBe(100_000);
    const slow = (await own.client.call('SLOWLOG', 'GET', '10')) as [number, number, number, string[]][];
    expect(slow.map(([, , micros, command]) => `${command.slice(0, 2).join(' ')}: ${micros} µs`)).toEqual([]);
  }, 60_000);
});

describe('hardening: a group fan-out is one audit entry', () => {
  const sessionPrefix = uniquePrefix('hg-s');
  const env = {
    QUEUE_PREFIX: `{${uniquePrefix('hg-q')}}`,
    SESSION_PREFIX: sessionPrefix,
    SESSION_TAG_SECRET: TAG_SECRET,
    WORKER_CONCURRENCY: '32',
    AUDIT_MAX_ENTRIES: '100',
  };
  const MEMBERS = 300;
  let q: TestQueue;
  let worker: TestWorker;
  let redis: Redis;
  let keys: SessionKeys;

  beforeAll(async () => {
    q = openQueue(env);
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL);
    keys = new SessionKeys(new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET }));
    await inBatches(
      Array.from({ length: MEMBERS }, (_, i) => `hg-member-${i}`),
      100,
      (userId) => keys.create({ userId, ttlSeconds: 3600, issuedAt: Date.now() - 60_000, groups: ['hg'] }),
    );
  });
  afterAll(async () => {
    await worker?.close();
    await q?.close();
    await keys?.delete(redis);
    redis?.disconnect();
  });

  it('keeps an earlier record in a 100-entry audit stream through a 300-member fan-out, and counts the members', async () => {
    const at = Date.now();
    const event = (id: string, type: string, resources: unknown[]) => ({
      id,
      recordedAt: new Date(at).toISOString(),
      action: { type },
      resources,
      result: { status: 'SUCCESS' },
    });
    await q.ingestPingOne(event('hg-e-user', 'USER.DELETED', [{ type: 'USER', id: 'hg-someone' }]));
    await waitForQueuesIdle([q.queue], 30_000);
    await q.ingestPingOne(event('hg-e-group', 'GROUP.DELETED', [{ type: 'GROUP', id: 'hg' }]));
    await waitForQueuesIdle([q.queue], 30_000);

    const audit = await new AuditLog(q.redis, new QueueKeys(env.QUEUE_PREFIX).audit, 100).read({
      limit: 100,
    });
    expect(audit.map((a) => ({ eventId: a.eventId, result: a.result, revoked: a.revoked }))).toEqual([
      { eventId: 'hg-e-group', result: 'fanned_out', revoked: MEMBERS },
      { eventId: 'hg-e-user', result: 'done', revoked: 0 },
    ]);
  }, 60_000);
});
