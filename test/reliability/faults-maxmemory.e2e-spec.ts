import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { commandId, QueueKeys } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { uniquePrefix, waitFor } from '../support/redis.js';
import {
  listenGateway,
  metricSum,
  pause,
  postPingOne,
  scrape,
  userEvent,
} from '../support/reliability-http.js';
import { muteConsole, quietQueues } from '../support/reliability-redis.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const SECRET = 'maxmemory-webhook-secret';
const TAG_SECRET = 'maxmemory-tag-secret-0123456789';

const memoryField = async (redis: OwnRedis, section: string, field: string) =>
  Number(new RegExp(`^${field}:(\\d+)`, 'm').exec(await redis.client.info(section))?.[1] ?? NaN);

/**
 * Fills Redis under `prefix` until it refuses a write for want of memory: 64 KB values, then 1 KB ones
 * (a refused 64 KB write leaves room for small ones). Then pins the limit a little below what is used:
 * client buffers come and go by tens of KB, and must not let a write slip through while "full".
 */
async function fillUntilOom(redis: OwnRedis, prefix: string): Promise<number> {
  let n = 0;
  for (const value of ['x'.repeat(64 * 1024), 'x'.repeat(1024)])
    for (;;) {
      if (n > 100_000) throw new Error('Redis never ran out of memory');
      try {
        await redis.client.set(`${prefix}:${n++}`, value);
      } catch (err) {
        if (/OOM/.test((err as Error).message)) break;
        throw err;
      }
    }
  const used = await memoryField(redis, 'memory', 'used_memory');
  await redis.client.config('SET', 'maxmemory', String(used - 256 * 1024));
  return n;
}

describe('Redis at maxmemory with noeviction (one Redis for queue and sessions)', () => {
  let redis: OwnRedis;
  let gw: TestGateway;
  let worker: TestWorker | undefined;
  let base: string;
  let store: SessionStore;
  let env: Record<string, string>;
  let restoreConsole: () => void;

  beforeAll(async () => {
    redis = await startOwnRedis('maxmem', ['--maxmemory-policy', 'noeviction']);
    restoreConsole = muteConsole([/OOM command not allowed/]);
    env = {
      REDIS_URL: redis.url,
      QUEUE_PREFIX: `{${uniquePrefix('oom-q')}}`,
      SESSION_PREFIX: uniquePrefix('oom-s'),
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: SECRET,
      WORKER_CONCURRENCY: '8',
      // Jobs a worker could not finish or fail (Redis refused the writes) come back within seconds.
      LOCK_DURATION_MS: '2000',
      STALLED_INTERVAL_MS: '1000',
      JOB_BACKOFF_MS: '200',
    };
    gw = await startGateway(env);
    quietQueues(gw.app, [gw.queue]);
    base = await listenGateway(gw);
    store = new SessionStore({ redis: redis.client, prefix: env['SESSION_PREFIX'], tagSecret: TAG_SECRET });
  }, 30_000);

  afterAll(async () => {
    await redis?.client.config('SET', 'maxmemory', '0').catch(() => undefined);
    await worker?.close();
    await gw?.close();
    await redis?.stop();
    restoreConsole?.();
  });

  const sessionsFor = (users: string[]) =>
    inBatches(users, 50, (userId) =>
      store.createSession({ userId, ttlSeconds: 3600, issuedAt: Date.now() - 3_600_000 }),
    );
  const unreadable = async (sessions: CreatedSession[]) =>
    (await inBatches(sessions, 100, (s) => store.getSession(s.sessionId))).every((s) => s === null);

  it('answers 503 while full, shows it in /metrics, and applies every acknowledged event once memory is raised', async () => {
    const before = Array.from({ length: 30 }, (_, i) => `oom-before-${i}`);
    const during = Array.from({ length: 30 }, (_, i) => `oom-during-${i}`);
    const sessions = await sessionsFor([...before, ...during]);
    const eventAt = Date.now() - 60_000;
    const ev = (userId: string) => [userEvent(`ev-${userId}`, userId, eventAt)];

    // Before the limit: acknowledged, queued (no worker yet: a backlog sits in Redis when it fills up).
    for (const u of before) expect((await postPingOne(base, SECRET, ev(u))).status).toBe(200);
    expect(await gw.queue.getJobCounts('waiting')).toEqual({ waiting: before.length });

    const used = await memoryField(redis, 'memory', 'used_memory');
    await redis.client.config('SET', 'maxmemory', String(used + 4 * 1024 * 1024));
    const fillers = await fillUntilOom(redis, 'oom-filler');
    const metricsBefore = await scrape(base);

    // At the limit: every new delivery is refused with 503 + Retry-After, however often it is retried.
    const refused = [];
    for (const u of during)
      for (let attempt = 0; attempt < 3; attempt++) {
        const res = await postPingOne(base, SECRET, ev(u));
        refused.push({ status: res.status, retryAfter: res.retryAfter });
        await pause(20);
      }
    expect(refused.filter((r) => r.status !== 503 || !/^\d+$/.test(r.retryAfter ?? ''))).toEqual([]);
    // A redelivery of an event acknowledged before the limit is still answered 200 (a duplicate: it is stored).
    const redelivered = await postPingOne(base, SECRET, ev(before[0]!));
    expect({ status: redelivered.status, body: redelivered.body }).toMatchObject({
      status: 200,
      body: { enqueued: 0, duplicates: 1 },
    });

    const metrics = await scrape(base);
    const grew = (name: string, labels: Record<string, string>) =>
      metricSum(metrics, name, labels) - metricSum(metricsBefore, name, labels);
    expect(
      grew('session_revoker_events_received_total', {
        source: 'pingone',
        type: 'USER.DELETED',
        outcome: 'unavailable',
      }),
    ).toBe(refused.length);
    expect(
      grew('session_revoker_http_request_duration_seconds_count', {
        route: '/webhooks/pingone',
        status_code: '503',
      }),
    ).toBe(refused.length);
    // Nothing acknowledged was evicted or lost while full.
    expect(await gw.queue.getJobCounts('waiting')).toEqual({ waiting: before.length });
    expect(await memoryField(redis, 'stats', 'evicted_keys')).toBe(0);
    const oomErrors = Number(/errorstat_OOM:count=(\d+)/.exec(await redis.client.info('errorstats'))?.[1]);
    expect(oomErrors).toBeGreaterThanOrEqual(refused.length);

    // The operator raises the limit; the sender's retries go through; a worker drains everything.
    await redis.client.config('SET', 'maxmemory', String(used + 256 * 1024 * 1024));
    for (const u of during) expect((await postPingOne(base, SECRET, ev(u))).status).toBe(200);
    worker = await startWorker(env);
    quietQueues(worker.app);
    await waitForQueuesIdle([gw.queue], 30_000);

    const ids = [...before, ...during].map((u) => commandId('pingone', `ev-${u}`));
    const states = await Promise.all(ids.map(async (id) => (await gw.queue.getJob(id))?.getState()));
    expect(states).toEqual(ids.map(() => 'completed'));
    expect(await gw.queue.getJobCounts('completed', 'failed')).toEqual({ completed: ids.length, failed: 0 });
    const audit = await gw.redis.xrange(new QueueKeys(env['QUEUE_PREFIX']!).audit, '-', '+');
    const audited = audit.map(([, f]) => (JSON.parse(f[1]!) as { eventId: string }).eventId).sort();
    expect(audited).toEqual([...before, ...during].map((u) => `ev-${u}`).sort());
    expect(await unreadable(sessions)).toBe(true);

    process.stdout.write(
      `faults-maxmemory (gateway): ${JSON.stringify({
        acknowledgedBeforeLimit: before.length,
        fillerKeys64k: fillers,
        refused503: refused.length,
        oomErrors,
        appliedAfterRaise: ids.length,
      })}\n`,
    );
  }, 60_000);

  it('memory running out under a busy worker: nothing acknowledged fails or is lost once it is raised', async () => {
    const N = 300;
    await redis.client.config('SET', 'maxmemory', '0');
    const users = Array.from({ length: N }, (_, i) => `oom-busy-${i}`);
    const sessions = await sessionsFor(users);
    const eventAt = Date.now() - 60_000;
    const completed = async () => (await gw.queue.getJobCounts('completed'))['completed']!;
    const baseline = await completed();
    const res = await postPingOne(
      base,
      SECRET,
      users.map((u) => userEvent(`ev-${u}`, u, eventAt)),
    );
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { enqueued: N } });

    // Out of memory at once (the limit below what is used), while the worker is in the middle of the backlog.
    const used = await memoryField(redis, 'memory', 'used_memory');
    await redis.client.config('SET', 'maxmemory', String(Math.floor(used / 2)));
    const fullAt = Date.now();
    const completedWhenFull = (await completed()) - baseline;
    // Full for longer than a job lock (2 s): what the worker held is given up and must come back.
    await waitFor(() => Date.now() - fullAt > 3000, 'three seconds at the limit', 10_000);
    const completedWhileFull = (await completed()) - baseline - completedWhenFull;

    await redis.client.config('SET', 'maxmemory', '0');
    await waitForQueuesIdle([gw.queue], 30_000);
    const ids = users.map((u) => commandId('pingone', `ev-${u}`));
    const jobs = await Promise.all(ids.map((id) => gw.queue.getJob(id)));
    const states = await Promise.all(jobs.map((j) => j?.getState()));
    const failed = jobs
      .filter((_, i) => states[i] !== 'completed')
      .map((j) => `${j?.id}: ${j?.failedReason}`);
    process.stdout.write(
      `faults-maxmemory (busy worker): ${JSON.stringify({
        jobs: N,
        completedBeforeFull: completedWhenFull,
        completedWhileFull,
        notCompleted: failed.length,
        stalledOnce: jobs.filter((j) => (j?.stalledCounter ?? 0) > 0).length,
        retried: jobs.filter((j) => (j?.attemptsMade ?? 0) > 1).length,
      })}\n`,
    );
    expect(failed).toEqual([]);
    const audit = await gw.redis.xrange(new QueueKeys(env['QUEUE_PREFIX']!).audit, '-', '+');
    const audited = new Set(audit.map(([, f]) => (JSON.parse(f[1]!) as { eventId: string }).eventId));
    expect(users.filter((u) => !audited.has(`ev-${u}`))).toEqual([]);
    expect(await unreadable(sessions)).toBe(true);
  }, 60_000);
});

/** The built gateway entry point (main.ts: gateway, and by default the worker embedded). */
const GATEWAY_MAIN = resolve('dist/apps/gateway/src/main.js');

interface Child {
  process: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The promise's value, or undefined if it does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function spawnGateway(env: Record<string, string>): Child {
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { process: child, output: () => output, exited };
}

describe('the gateway process refuses an evicting queue Redis at start-up', () => {
  // The in-process variants (worker module, gateway module, override) are in test/worker/startup.e2e-spec.ts.
  let redis: OwnRedis;
  const children: Child[] = [];

  beforeAll(async () => {
    redis = await startOwnRedis('evict', ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
  });
  afterAll(async () => {
    for (const c of children)
      if (c.process.exitCode === null && c.process.signalCode === null) {
        c.process.kill('SIGKILL');
        await c.exited;
      }
    await redis?.stop();
  });

  const env = (extra: Record<string, string>) => ({
    REDIS_URL: redis.url,
    QUEUE_PREFIX: `{${uniquePrefix('evict')}}`,
    SESSION_TAG_SECRET: TAG_SECRET,
    PINGONE_WEBHOOK_SECRET: SECRET,
    PORT: '0',
    ...extra,
  });

  it.each([
    ['with the worker embedded (the default)', { EMBEDDED_WORKER: 'true' }],
    ['as a gateway alone', { EMBEDDED_WORKER: 'false' }],
  ])(
    '%s: exits 1 without listening, saying why and how to fix it',
    async (_name, extra) => {
      const child = spawnGateway(env(extra));
      children.push(child);
      const exit = await within(child.exited, 20_000);
      expect({ exit, listening: child.output().includes('gateway listening') }).toEqual({
        exit: { code: 1, signal: null },
        listening: false,
      });
      expect(child.output()).toMatch(/maxmemory-policy allkeys-lru.*noeviction.*ALLOW_EVICTING_QUEUE_REDIS/s);
    },
    30_000,
  );

  it('starts when explicitly overridden (ALLOW_EVICTING_QUEUE_REDIS=true), and exits 0 on SIGTERM', async () => {
    const child = spawnGateway(env({ ALLOW_EVICTING_QUEUE_REDIS: 'true' }));
    children.push(child);
    await waitFor(
      () => child.output().includes('gateway listening') || child.process.exitCode !== null,
      'the gateway process to listen',
      20_000,
    );
    expect(child.output()).toContain('gateway listening');
    child.process.kill('SIGTERM');
    const exit = await within(child.exited, 15_000);
    expect(exit).toEqual({ code: 0, signal: null });
  }, 45_000);
});
