import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import request from 'supertest';
import { waitForReplicas, waitForReplicasEverywhere } from '#redis';
import { QueueKeys } from '#revocation';
import { closeWithoutRedis, startGateway, type TestGateway } from '../support/gateway.js';
import { freePorts, startRedisServer, uniquePrefix, waitFor, type RedisProcess } from '../support/redis.js';

const SECRET = 'replica-wait-secret';
const event = (id: string) =>
  JSON.stringify({
    id,
    recordedAt: new Date().toISOString(),
    action: { type: 'USER.DELETED' },
    resources: [{ type: 'USER', id: `user-${id}` }],
    result: { status: 'SUCCESS' },
  });

/** ENQUEUE_WAIT_REPLICAS: a delivery is acknowledged only once a replica has it (Redis WAIT). */
describe('acknowledging only what a replica holds', () => {
  let primary: RedisProcess;
  let replica: RedisProcess;
  let dir: string;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sr-wait-'));
    const [p, r] = await freePorts(2);
    primary = await startRedisServer(p!, dir, [
      '--dbfilename',
      'primary.rdb',
      '--repl-diskless-sync-delay',
      '0',
    ]);
    replica = await startRedisServer(r!, dir, [
      '--replicaof',
      '127.0.0.1',
      String(p),
      '--dbfilename',
      'replica.rdb',
    ]);
    const probe = new Redis({ port: p });
    await waitFor(
      async () => (await probe.info('replication')).includes('state=online'),
      'the replica to attach',
    );
    probe.disconnect();
    gw = await startGateway({
      REDIS_URL: `redis://127.0.0.1:${p}`,
      QUEUE_PREFIX: `{${uniquePrefix('wait')}}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      ENQUEUE_WAIT_REPLICAS: '1',
      // Generous: the first delivery also loads BullMQ's scripts, and CI runs suites side by side.
      ENQUEUE_TIMEOUT_MS: '6000',
    });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    for (const s of [primary, replica]) if (s?.process.exitCode === null) s.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (body: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Content-Type', 'application/json')
      .send(body);

  it('answers 200 once the replica has the delivery, and 503 while the replica cannot confirm it', async () => {
    const ok = await post(event('w1'));
    expect(ok.status).toBe(200);
    expect(ok.body.enqueued).toBe(1);
    const onReplica = new Redis({ port: replica.port });
    expect(
      await onReplica.exists(
        `${gw.config.redis.queuePrefix}:revocations:${ok.body.enqueued && (await gw.commands())[0]!.id}`,
      ),
    ).toBe(1);
    onReplica.disconnect();

    // A replica that lags (it stops applying the stream while paused) cannot confirm: no 200.
    const lagging = new Redis({ port: replica.port });
    await lagging.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    let refused: request.Response;
    try {
      refused = await post(event('w2'));
    } finally {
      await lagging.call('CLIENT', 'UNPAUSE');
      lagging.disconnect();
    }
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
  });

  it('acknowledges a duplicate only once the replica has its first delivery, stored by another gateway', async () => {
    // Another gateway on the same Redis, its own connection, a shorter deadline.
    const other = await startGateway({
      REDIS_URL: `redis://127.0.0.1:${primary.port}`,
      QUEUE_PREFIX: gw.config.redis.queuePrefix,
      PINGONE_WEBHOOK_SECRET: SECRET,
      ENQUEUE_WAIT_REPLICAS: '1',
      ENQUEUE_TIMEOUT_MS: '2000',
    });
    const lagging = new Redis({ port: replica.port });
    const admin = new Redis({ port: primary.port });
    try {
      // This gateway has sent its scripts (a script's first EVAL on a connection is replicated), and
      // the replica has acknowledged everything written so far, this gateway's writes included: a
      // WAIT for those alone would succeed at once.
      expect((await post(event('w3-warm'))).status).toBe(200);
      await waitFor(async () => {
        const info = await admin.info('replication');
        const acked = /slave0:.*offset=(\d+)/.exec(info)?.[1];
        return acked !== undefined && acked === /master_repl_offset:(\d+)/.exec(info)?.[1];
      }, 'the replica to acknowledge everything');
      await lagging.call('CLIENT', 'PAUSE', '20000', 'WRITE');
      // The other gateway stores the event on the primary, and cannot have it confirmed: 503.
      const first = await request(other.app.getHttpServer())
        .post('/webhooks/pingone')
        .set('Authorization', `Bearer ${SECRET}`)
        .set('Content-Type', 'application/json')
        .send(event('w3'));
      expect(first.status).toBe(503);
      // Stored all the same (its job and mark are on the primary), so the retry below is a duplicate.
      const keys = new QueueKeys(gw.config.redis.queuePrefix);
      const command = (await gw.commands()).find((c) => c.eventId === 'w3');
      expect(command).toBeDefined();
      expect(await admin.exists(keys.dedup(command!.id))).toBe(1);
      // The marker every WAIT follows (the other gateway's wrote it too): gone, to see the retry's.
      await admin.del(keys.replicaWait);
      // The sender's retry reaches this gateway, which finds it a duplicate. Its connection wrote
      // nothing the replica lacks, but the job it vouches for is not on the replica: no 200 either.
      // (Redis 7.0 also gives a connection's next command, a read included, the offset of writes
      // other connections made before it, so its WAIT covers them; that is observed, not documented,
      // and the gateway writes a key of its own before the WAIT rather than rely on it.)
      const retry = await post(event('w3'));
      expect(retry.status).toBe(503);
      // The write of its own it made before its WAIT.
      expect(await admin.pttl(keys.replicaWait)).toBeGreaterThan(0);
    } finally {
      await lagging.call('CLIENT', 'UNPAUSE');
      lagging.disconnect();
      admin.disconnect();
      // Its keys are this file's gateway's too: closed without deleting them.
      await closeWithoutRedis(other);
    }
    // Once the replica has caught up, the duplicate is acknowledged.
    const later = await post(event('w3'));
    expect(later.status).toBe(200);
    expect(later.body).toMatchObject({ enqueued: 0, duplicates: 1 });
  });

  it('a WAIT with a marker writes it first and is not acknowledged while the replica lacks what another connection wrote', async () => {
    const writer = new Redis({ port: primary.port });
    const waiter = new Redis({ port: primary.port });
    const lagging = new Redis({ port: replica.port });
    try {
      // Everything so far acknowledged, then the replica stops applying the stream.
      expect(await waiter.call('WAIT', '1', '5000')).toBe(1);
      await lagging.call('CLIENT', 'PAUSE', '20000', 'WRITE');
      await writer.set('written-elsewhere', '1');
      // (Redis 7.0 also lets the waiter's own INFO cover the other write; the marker does not rely on it.)
      expect(
        await waitForReplicas(waiter, 'written-elsewhere', 1, 300, { marker: 'replica-wait-marker' }),
      ).toEqual({ wanted: 1, acknowledged: 0 });
      expect(await writer.pttl('replica-wait-marker')).toBeGreaterThan(0);
    } finally {
      await lagging.call('CLIENT', 'UNPAUSE');
      for (const c of [writer, waiter, lagging]) c.disconnect();
    }
  });

  it('callers sharing a connection share WAITs, each sent after their writes', async () => {
    const client = new Redis({ port: primary.port });
    try {
      const waits = async () =>
        Number(/cmdstat_wait:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
      const before = await waits();
      const results = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          await client.set(`group-commit:${i}`, String(i));
          return i % 2
            ? waitForReplicas(client, `group-commit:${i}`, 1, 2000)
            : waitForReplicasEverywhere(client, 1, 2000);
        }),
      );
      expect(results).toEqual(results.map(() => ({ wanted: 1, acknowledged: 1 })));
      const sent = (await waits()) - before;
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThan(50);
      const onReplica = new Redis({ port: replica.port });
      try {
        expect(await onReplica.get('group-commit:49')).toBe('49');
      } finally {
        onReplica.disconnect();
      }
    } finally {
      client.disconnect();
    }
  });
});
