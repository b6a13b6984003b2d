import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import request from 'supertest';
import { AuditLog, QueueKeys, type RevocationCommand } from '#revocation';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const ALICE = '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69';
const BOB = '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e';
const CAROL = '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4';
const CAROL_PING_SESSION = '6f5e4d3c-2b1a-4098-8765-43210fedcba9';
const SECRET = 'pipeline-webhook-secret';

describe('gateway -> queue -> worker -> session store', () => {
  const sessionPrefix = uniquePrefix('pipe-s');
  const env = {
    QUEUE_PREFIX: `{${uniquePrefix('pipe-q')}}`,
    SESSION_PREFIX: sessionPrefix,
    PINGONE_WEBHOOK_SECRET: SECRET,
    SESSION_TAG_SECRET: 'pipeline-tag-secret-0123456789',
    CLOCK_SKEW_MS: '0',
  };
  let gw: TestGateway;
  let worker: TestWorker;
  let redis: Redis;
  let store: SessionStore;

  beforeAll(async () => {
    gw = await startGateway(env);
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL);
    store = new SessionStore({
      redis,
      prefix: sessionPrefix,
      tagSecret: env.SESSION_TAG_SECRET,
      clockSkewMs: 0,
    });
  });
  afterAll(async () => {
    await worker.close();
    await gw.close();
    await deletePrefix(redis, sessionPrefix);
    redis.disconnect();
  });

  const post = (body: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Content-Type', 'application/json')
      .send(body);

  it('applies exactly the effects the fixture batch lists', async () => {
    // Sessions issued before the events (their recordedAt is 2026-11-20T10:00:0x).
    const before = Date.parse('2026-11-20T09:00:00Z');
    const session = (userId: string, idpSessionId?: string) =>
      store.createSession({
        userId,
        ttlSeconds: 3600,
        issuedAt: before,
        ...(idpSessionId ? { idpSessionId } : {}),
      });
    const alice = await Promise.all([session(ALICE), session(ALICE)]);
    const bob = await session(BOB);
    const carolFromPing = await session(CAROL, CAROL_PING_SESSION);
    const carolOther = await session(CAROL, 'another-ping-session');
    const carolPlain = await session(CAROL);

    const res = await post(readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8'));
    expect(res.status).toBe(200);
    await waitForQueuesIdle([gw.queue]);

    for (const s of [...alice, bob, carolFromPing]) expect(await store.getSession(s.sessionId)).toBeNull();
    for (const s of [carolOther, carolPlain]) expect(await store.getSession(s.sessionId)).not.toBeNull();
    const failed = await gw.queue.getJobs(['failed']);
    expect(failed).toHaveLength(0);

    const audit = await new AuditLog(gw.redis, new QueueKeys(env.QUEUE_PREFIX).audit, 1000).read({
      limit: 10,
    });
    expect(audit.map((a) => a.eventId).sort()).toEqual([
      'e1000001-0000-4000-8000-000000000001',
      'e1000001-0000-4000-8000-000000000002',
      'e1000001-0000-4000-8000-000000000003',
    ]);
    expect(audit.find((a) => a.eventId?.endsWith('01'))).toMatchObject({ revoked: 2, source: 'pingone' });
  });

  it('keeps a session created after the event alive when the event is replayed (invariant 2)', async () => {
    const fresh = await store.createSession({ userId: ALICE, ttlSeconds: 3600 });
    const res = await post(
      readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8').replaceAll('e1000001', 'e2000002'),
    );
    expect(res.body.enqueued).toBe(3);
    await waitForQueuesIdle([gw.queue]);
    expect(await store.getSession(fresh.sessionId)).not.toBeNull();
  });

  it('fails an invalid command at once and keeps it', async () => {
    await gw.queue.add('revoke', { id: 'bad', target: { type: 'user' } } as unknown as RevocationCommand, {
      jobId: 'invalid-command',
      attempts: 5,
    });
    await waitForQueuesIdle([gw.queue]);
    const job = await gw.queue.getJob('invalid-command');
    expect(await job!.getState()).toBe('failed');
    expect(job!.attemptsMade).toBe(1);
    expect(job!.failedReason).toMatch(/invalid revocation command/);
  });
});
