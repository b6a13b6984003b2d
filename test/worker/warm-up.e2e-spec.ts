import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { RevokerMetrics } from '#metrics';
import { producerOptions, REVOCATION_QUEUE, RevocationProducer } from '#revocation';
import { SessionStore } from '#session-store';
import { command } from '../support/commands.js';
import { deletePrefix, freePorts, REDIS_URL, testRedis, uniquePrefix, waitFor } from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';
import { RevocationProcessor } from '../../apps/worker/src/revocation.processor.js';
import { warmUpWorker } from '../../apps/worker/src/warm-up.js';

const TAG_SECRET = 'test-tag-secret-0123456789';

/** Every key under `pattern`, on the shared test Redis. */
async function keysLike(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** The samples of one metric, with a value other than 0. */
async function nonZero(metrics: RevokerMetrics, name: string): Promise<unknown[]> {
  const metric = metrics.registry.getSingleMetric(name);
  return ((await metric?.get())?.values ?? []).filter((v) => v.value !== 0);
}

describe('warmUpWorker: the job path run warm before the worker says it is ready', () => {
  const prefix = uniquePrefix('wu');
  const queuePrefix = `{${prefix}-q}`;
  const sessionPrefix = `${prefix}-s`;
  let redis: Redis;
  let worker: TestWorker;

  beforeAll(async () => {
    redis = testRedis();
    worker = await startWorker({ QUEUE_PREFIX: queuePrefix, SESSION_PREFIX: sessionPrefix });
  });
  afterAll(async () => {
    await worker?.close();
    await deletePrefix(redis, queuePrefix);
    await deletePrefix(redis, sessionPrefix);
    redis.disconnect();
  });

  it('runs jobs until their cost settles, leaves nothing behind, and the real workers are fetching', async () => {
    const report = await warmUpWorker(worker.app);
    expect(['converged', 'max-batches', 'deadline']).toContain(report.stopped);
    expect(report.items).toBeGreaterThanOrEqual(800);

    // Nothing of the warm-up in Redis: no queue of its own, no dedup marks, no stamps, no audit.
    expect(
      (await keysLike(redis, `${queuePrefix}:*`)).filter((k) => /warm-up|:dedup:|:audit/.test(k)),
    ).toEqual([]);
    expect(await keysLike(redis, `${sessionPrefix}*`)).toEqual([]);
    // Nor in what the worker reports.
    const metrics = worker.app.get(RevokerMetrics);
    expect(await nonZero(metrics, 'session_revoker_jobs_total')).toEqual([]);
    expect(await nonZero(metrics, 'session_revoker_sessions_revoked_total')).toEqual([]);

    const processor = worker.app.get(RevocationProcessor);
    expect(processor.workers.every((w) => w.isRunning())).toBe(true);

    // A real job right after is taken and done as before.
    const store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET });
    const { sessionId } = await store.createSession({ userId: 'real-user', ttlSeconds: 600 });
    const queue = worker.app.get<Queue>(getQueueToken(REVOCATION_QUEUE));
    await new RevocationProducer(queue, redis, producerOptions(worker.config)).enqueue([
      command('after-warm-up', { type: 'user', userId: 'real-user' }, Date.now()),
    ]);
    await waitFor(async () => (await store.getSession(sessionId)) === null, 'the real revocation');
    await waitFor(
      async () => (await nonZero(metrics, 'session_revoker_jobs_total')).length === 1,
      'its count',
    );
  });
});

const GATEWAY = resolve('dist/apps/gateway/src/main.js');

describe('the gateway process with its embedded worker (npm start) warms up before it listens', () => {
  const prefix = uniquePrefix('wu-proc');
  const queuePrefix = `{${prefix}-q}`;
  const sessionPrefix = `${prefix}-s`;
  const secret = 'warm-up-webhook-secret-0123456789';
  let redis: Redis;
  let child: ChildProcess | undefined;
  let output = '';
  let url = '';

  beforeAll(async () => {
    expect(existsSync(GATEWAY) ? GATEWAY : 'run `npm run build` first').toBe(GATEWAY);
    redis = testRedis();
    const [port] = (await freePorts(1)) as [number];
    url = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [GATEWAY], {
      env: {
        PATH: process.env['PATH'] ?? '',
        NO_COLOR: '1',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        REDIS_URL,
        QUEUE_PREFIX: queuePrefix,
        SESSION_PREFIX: sessionPrefix,
        SESSION_TAG_SECRET: TAG_SECRET,
        PINGONE_WEBHOOK_SECRET: secret,
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    await waitFor(() => output.includes('gateway listening on'), `the gateway to listen:\n${output}`, 60_000);
  }, 90_000);
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child!.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    }
    await deletePrefix(redis, queuePrefix);
    await deletePrefix(redis, sessionPrefix);
    redis.disconnect();
  });

  it('says so once per part, logs none of its requests, and counts none of them', async () => {
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; level: number });
    const listening = lines.findIndex((l) => l.msg.startsWith('gateway listening on'));
    const before = lines.slice(0, listening);
    expect(
      before.filter((l) => / warmed up: /.test(l.msg)).map((l) => [l.level, l.msg.split(':')[0]]),
    ).toEqual([
      [30, 'embedded worker warmed up'],
      [30, 'webhook path warmed up'],
    ]);
    expect(before.filter((l) => l.msg === 'request completed')).toEqual([]);

    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).not.toMatch(/^session_revoker_events_received_total\{/m);
    expect(text).not.toMatch(/^session_revoker_http_request_duration_seconds_count\{[^}]*webhooks/m);
    expect(text).not.toMatch(/^session_revoker_jobs_total\{/m);
  });

  it('leaves nothing in Redis: no queue, jobs, dedup marks, audit entries or stamps of its own', async () => {
    const queueKeys = await keysLike(redis, `${queuePrefix}:*`);
    expect(queueKeys.filter((k) => /warm-up|:dedup:|:audit/.test(k))).toEqual([]);
    expect(await redis.xlen(`${queuePrefix}:audit`)).toBe(0);
    expect(
      queueKeys.filter(
        (k) => k.startsWith(`${queuePrefix}:${REVOCATION_QUEUE}:`) && /:\w+-[\w-]{27}$/.test(k),
      ),
    ).toEqual([]);
    expect(await keysLike(redis, `${sessionPrefix}*`)).toEqual([]);
  });

  it('then takes a real delivery as before: enqueued, revoked, audited', async () => {
    const store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET });
    const { sessionId } = await store.createSession({ userId: 'proc-user', ttlSeconds: 600 });
    const res = await fetch(`${url}/webhooks/pingone`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({
        id: 'proc-event-1',
        recordedAt: new Date().toISOString(),
        action: { type: 'USER.DELETED' },
        resources: [{ type: 'USER', id: 'proc-user' }],
        result: { status: 'SUCCESS' },
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ received: 1, enqueued: 1, duplicates: 0 });
    await waitFor(async () => (await store.getSession(sessionId)) === null, 'the revocation');
    await waitFor(async () => (await redis.xlen(`${queuePrefix}:audit`)) === 1, 'its audit entry');
  });
});
