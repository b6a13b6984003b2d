import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RevocationCommand } from '#revocation';
import { SessionRevokedError, SessionStore } from '#session-store';
import { command } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import {
  freePorts,
  REDIS_URL,
  type RedisProcess,
  startRedisServer,
  uniquePrefix,
  waitFor,
} from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';

/**
 * The worker's session Redis is a redis-server of this file's own (so it can be stopped); the queue
 * stays on the shared test Redis (QUEUE_REDIS_URL), so jobs survive the outage.
 */
describe('retries: a Redis outage delays revocations, never loses them', () => {
  let dir: string;
  let port: number;
  let server: RedisProcess;
  let sessionRedis: Redis;
  let keys: SessionKeys;
  let q: TestQueue;
  let worker: TestWorker;
  const env: Record<string, string> = {
    QUEUE_REDIS_URL: REDIS_URL,
    QUEUE_PREFIX: `{${uniquePrefix('retry-q')}}`,
    SESSION_PREFIX: uniquePrefix('retry-s'),
    SESSION_TAG_SECRET: 'retry-tag-secret-0123456789',
    CLOCK_SKEW_MS: '0',
    JOB_ATTEMPTS: '8',
    JOB_BACKOFF_MS: '200',
  };
  const hourAgo = Date.now() - 3_600_000;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sr-retry-'));
    [port] = (await freePorts(1)) as [number];
    server = await startRedisServer(port, dir);
    env['REDIS_URL'] = `redis://127.0.0.1:${port}`;
    // The test's own client reconnects quickly; the worker's keeps its production settings.
    sessionRedis = new Redis(env['REDIS_URL'], { retryStrategy: () => 100 });
    sessionRedis.on('error', () => undefined);
    keys = new SessionKeys(
      new SessionStore({
        redis: sessionRedis,
        prefix: env['SESSION_PREFIX'],
        tagSecret: env['SESSION_TAG_SECRET']!,
      }),
    );
    q = openQueue(env);
    worker = await startWorker(env);
  });
  afterAll(async () => {
    await worker?.close();
    await q?.close();
    sessionRedis?.disconnect();
    if (server && server.process.exitCode === null && server.process.signalCode === null) {
      const exited = new Promise((resolve) => server.process.once('exit', resolve));
      server.process.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Stops the session Redis after writing its data to disk, so a restart finds the sessions again. */
  async function stopSessionRedis(): Promise<void> {
    const exited = new Promise((resolve) => server.process.once('exit', resolve));
    // A one-shot client: a reconnecting one would send SHUTDOWN again to the restarted server.
    const admin = new Redis({ port, retryStrategy: () => null, autoResendUnfulfilledCommands: false });
    await admin.call('SHUTDOWN', 'SAVE').catch(() => undefined);
    admin.disconnect();
    await exited;
  }
  const startSessionRedis = async () => {
    server = await startRedisServer(port, dir);
    await waitFor(async () => (await sessionRedis.ping()) === 'PONG', 'the test client to reconnect');
  };
  const job = (id: string) => q.queue.getJob(id);

  it('an invalid command fails at once and is kept, without holding up a valid one beside it', async () => {
    const alive = await keys.create({ userId: 'valid-user', ttlSeconds: 3600, issuedAt: hourAgo });
    const valid = command('valid-beside-invalid', { type: 'user', userId: 'valid-user' }, Date.now());
    const invalid = {
      ...command('invalid-handle', { type: 'user', userId: 'x' }, Date.now()),
      target: { type: 'session', userId: 'valid-user', handle: 'not a handle' },
    } as unknown as RevocationCommand;
    await q.enqueue([invalid, valid]);
    await waitForQueuesIdle([q.queue]);

    const failed = await job('invalid-handle');
    expect(await failed!.getState()).toBe('failed');
    expect(failed!.attemptsMade).toBe(1);
    expect(failed!.opts.attempts).toBe(8);
    expect(failed!.failedReason).toMatch(/invalid revocation command: target.handle/);
    expect(failed!.data).toEqual(JSON.parse(JSON.stringify(invalid)));
    expect(await (await job('valid-beside-invalid'))!.getState()).toBe('completed');
    expect(await keys.store.getSession(alive.sessionId)).toBeNull();
  });

  it('a transient Redis error is retried with backoff and the revocation completes', async () => {
    const old = await Promise.all(
      [0, 1].map(() => keys.create({ userId: 'outage-user', ttlSeconds: 3600, issuedAt: hourAgo })),
    );
    await stopSessionRedis();
    const revokedAt = Date.now() - 60_000;
    await q.enqueue([command('during-outage', { type: 'user', userId: 'outage-user' }, revokedAt)]);

    const attempted = (await waitFor(
      async () => {
        const j = await job('during-outage');
        return j && j.attemptsMade >= 1 ? j : undefined;
      },
      'a failed attempt while the session Redis is down',
      15_000,
    ))!;
    expect(attempted.failedReason).toBeTruthy();
    expect(['delayed', 'waiting', 'active']).toContain(await attempted.getState());

    await startSessionRedis();
    await waitForQueuesIdle([q.queue], 20_000);
    const done = await job('during-outage');
    expect(await done!.getState()).toBe('completed');
    expect(done!.returnvalue).toMatchObject({ revoked: 2 });
    for (const s of old) expect(await keys.store.getSession(s.sessionId)).toBeNull();
    // The stamp is in force (not just the records gone): a late write from before it is refused...
    await expect(
      keys.store.createSession({ userId: 'outage-user', ttlSeconds: 3600, issuedAt: revokedAt - 1 }),
    ).rejects.toBeInstanceOf(SessionRevokedError);
    // ...and a login after it is not.
    const fresh = await keys.create({ userId: 'outage-user', ttlSeconds: 3600 });
    expect(await keys.store.getSession(fresh.sessionId)).not.toBeNull();
  });

  it('a command that exhausts its attempts is kept in the failed set and can be retried later', async () => {
    const old = await keys.create({ userId: 'exhausted-user', ttlSeconds: 3600, issuedAt: hourAgo });
    const twoAttempts = openQueue({ ...env, JOB_ATTEMPTS: '2' });
    try {
      // A persistent error that fails each attempt at once: the session Redis refuses every write.
      await sessionRedis.config('SET', 'min-replicas-to-write', '1');
      const revokedAt = Date.now() - 60_000;
      await twoAttempts.enqueue([
        command('exhausted', { type: 'user', userId: 'exhausted-user' }, revokedAt),
      ]);
      await waitForQueuesIdle([q.queue], 15_000);
      const failed = await job('exhausted');
      expect(await failed!.getState()).toBe('failed');
      expect(failed!.attemptsMade).toBe(2);
      expect(failed!.failedReason).toMatch(/NOREPLICAS/);
      expect(failed!.data).toMatchObject({ id: 'exhausted', notBefore: revokedAt });
      expect(await keys.store.getSession(old.sessionId)).not.toBeNull();

      // Once Redis takes writes again, the kept job can be retried as it is (what the admin API does).
      await sessionRedis.config('SET', 'min-replicas-to-write', '0');
      await failed!.retry('failed');
      await waitForQueuesIdle([q.queue], 15_000);
      expect(await (await job('exhausted'))!.getState()).toBe('completed');
      expect(await keys.store.getSession(old.sessionId)).toBeNull();
    } finally {
      await sessionRedis.config('SET', 'min-replicas-to-write', '0');
      await twoAttempts.queue.close();
      twoAttempts.redis.disconnect();
    }
  });
});
