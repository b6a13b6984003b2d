import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SessionStore, type CreatedSession } from '#session-store';
import { type ChildExit, type ChildWorker, spawnWorker } from '../support/child-worker.js';
import { command, inBatches } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { openQueue } from '../support/revocation-queue.js';
import { startOwnRedis } from '../support/session-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const TAG_SECRET = 'shutdown-tag-secret-0123456789';

/**
 * A worker process (the built dist/apps/worker/src/main.js) whose session Redis is paused for writes
 * while it holds jobs: its revocations block mid-job, for exactly as long as the test wants.
 */
async function setUp(name: string, workerEnv: Record<string, string>) {
  const redis = await startOwnRedis(name);
  const env = {
    REDIS_URL: redis.url,
    QUEUE_REDIS_URL: REDIS_URL,
    QUEUE_PREFIX: `{${uniquePrefix(`${name}-q`)}}`,
    SESSION_PREFIX: uniquePrefix(`${name}-s`),
    SESSION_TAG_SECRET: TAG_SECRET,
    WORKER_PORT: '0',
    ...workerEnv,
  };
  const store = new SessionStore({ redis: redis.client, prefix: env.SESSION_PREFIX, tagSecret: TAG_SECRET });
  const q = openQueue(env);
  return { redis, env, store, q };
}

const hourAgo = () => Date.now() - 3_600_000;

describe('SIGTERM: the worker process finishes its active jobs, then exits within the grace period', () => {
  const GRACE = 15_000;
  let ctx: Awaited<ReturnType<typeof setUp>>;
  let child: ChildWorker | undefined;
  let finisher: TestWorker | undefined;
  let exit: ChildExit | undefined;
  const users = Array.from({ length: 6 }, (_, i) => `drain-user-${i}`);

  beforeAll(async () => {
    ctx = await setUp('term', { WORKER_CONCURRENCY: '4', SHUTDOWN_GRACE_MS: String(GRACE) });
    child = await spawnWorker(ctx.env);
  });
  afterAll(async () => {
    await child?.stop();
    await finisher?.close();
    await ctx?.q.close();
    await ctx?.redis.stop();
  });

  it('drains: active jobs complete after the signal, waiting ones stay queued, nothing is left stalled', async () => {
    const old = await inBatches(users, 6, (userId) =>
      ctx.store.createSession({ userId, ttlSeconds: 3600, issuedAt: hourAgo() }),
    );
    const revokedAt = Date.now() - 60_000;
    await ctx.redis.pauseWrites();
    await ctx.q.enqueue(users.map((u) => command(`drain-${u}`, { type: 'user', userId: u }, revokedAt)));
    await waitFor(
      async () => {
        const c = await ctx.q.queue.getJobCounts('active', 'waiting');
        return c['active'] === 4 && c['waiting'] === 2;
      },
      '4 active jobs (the concurrency) and 2 waiting',
      10_000,
    );
    const active = (await ctx.q.queue.getJobs(['active'])).map((j) => j.id!).sort();

    const signalledAt = Date.now();
    child!.process.kill('SIGTERM');
    // The worker stops taking jobs (its blocking connection goes) while it still holds the 4 active ones.
    await waitFor(
      async () => (await ctx.q.queue.getWorkers()).length === 0,
      'the worker to stop taking jobs',
      GRACE,
    );
    expect(child!.process.exitCode).toBeNull();
    expect(child!.process.signalCode).toBeNull();
    expect((await ctx.q.queue.getJobs(['active'])).map((j) => j.id!).sort()).toEqual(active);

    const unpausedAt = Date.now();
    await ctx.redis.unpause();
    exit = await within(child!.exited, GRACE + 5000);
    if (!exit) throw new Error(`no exit ${GRACE + 5000} ms after SIGTERM:\n${child!.output()}`);
    // It waited for its jobs, and no longer than the grace period.
    expect(exit.at).toBeGreaterThanOrEqual(unpausedAt);
    expect(exit.at - signalledAt).toBeLessThan(GRACE);
    expect(child!.output()).not.toMatch(/grace period over/);

    for (const id of active) {
      const job = await ctx.q.queue.getJob(id);
      expect({ id, state: await job!.getState() }).toEqual({ id, state: 'completed' });
      expect(job!.finishedOn!).toBeGreaterThanOrEqual(unpausedAt - 50);
    }
    expect(await ctx.q.queue.getJobCounts('active', 'waiting', 'failed', 'delayed')).toEqual({
      active: 0,
      waiting: 2,
      failed: 0,
      delayed: 0,
    });

    // The two it never took are not lost: the next worker runs them; none of the six ever stalled.
    finisher = await startWorker(ctx.env);
    await waitForQueuesIdle([ctx.q.queue], 15_000);
    const completed = await ctx.q.queue.getJobs(['completed']);
    expect(completed).toHaveLength(users.length);
    for (const job of completed)
      expect({ id: job.id, stalled: job.stalledCounter }).toEqual({ id: job.id, stalled: 0 });
    const readable = await Promise.all(old.map((s: CreatedSession) => ctx.store.getSession(s.sessionId)));
    expect(readable.filter(Boolean)).toHaveLength(0);
  }, 45_000);

  // Nest's enableShutdownHooks() re-raises the signal once the hooks ran unless given
  // { useProcessExit: true }: the process would end killed by SIGTERM (status 143), not with 0.
  it('exits with status 0 after a clean drain', () => {
    expect(exit).toBeDefined();
    expect({ code: exit!.code, signal: exit!.signal }).toEqual({ code: 0, signal: null });
  });
});

describe('SIGTERM past the grace period: the worker exits anyway and its jobs are taken back as stalled', () => {
  const GRACE = 1000;
  let ctx: Awaited<ReturnType<typeof setUp>>;
  let child: ChildWorker | undefined;
  let taker: TestWorker | undefined;
  // Short locks and stalled checks, so another worker takes the jobs back within seconds.
  const fast = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };
  const users = ['late-user-0', 'late-user-1'];
  let old: CreatedSession[];

  beforeAll(async () => {
    ctx = await setUp('grace', { WORKER_CONCURRENCY: '2', SHUTDOWN_GRACE_MS: String(GRACE), ...fast });
    child = await spawnWorker(ctx.env);
  });
  afterAll(async () => {
    await child?.stop();
    await taker?.close();
    await ctx?.q.close();
    await ctx?.redis.stop();
  });

  // BullMQ's close() hands a second close(true) the first close's promise: a forced close after a
  // graceful one would wait for the same active jobs. The worker must really go at the grace's end.
  it('exits within SHUTDOWN_GRACE_MS even while its jobs are still blocked', async () => {
    old = await Promise.all(
      users.map((userId) => ctx.store.createSession({ userId, ttlSeconds: 3600, issuedAt: hourAgo() })),
    );
    await ctx.redis.pauseWrites();
    await ctx.q.enqueue(
      users.map((u) => command(`late-${u}`, { type: 'user', userId: u }, Date.now() - 60_000)),
    );
    await waitFor(
      async () => (await ctx.q.queue.getJobCounts('active'))['active'] === 2,
      '2 active jobs',
      10_000,
    );

    const signalledAt = Date.now();
    child!.process.kill('SIGTERM');
    // The grace, plus a few seconds to close the connections and the HTTP server.
    const exit = await within(child!.exited, GRACE + 4000);
    const logged = /grace period over/.test(child!.output());
    if (!exit) {
      await child!.stop();
      throw new Error(
        `the worker was still running ${GRACE + 4000} ms after SIGTERM with SHUTDOWN_GRACE_MS=${GRACE} ` +
          `(it ${logged ? 'did' : 'did not'} log "grace period over"), so the test SIGKILLed it`,
      );
    }
    expect(exit.at - signalledAt).toBeLessThan(GRACE + 4000);
    expect(logged).toBe(true);
    // Redis is still paused: the jobs are unfinished, still marked active.
    expect((await ctx.q.queue.getJobCounts('active'))['active']).toBe(2);
  }, 45_000);

  it('another worker takes the unfinished jobs back as stalled and completes them', async () => {
    expect(child!.process.exitCode !== null || child!.process.signalCode !== null).toBe(true);
    await ctx.redis.unpause();
    taker = await startWorker({ ...ctx.env, ...fast });
    await waitForQueuesIdle([ctx.q.queue], 20_000);
    const completed = await ctx.q.queue.getJobs(['completed']);
    expect(completed.map((j) => [j.id, j.stalledCounter]).sort()).toEqual(
      users.map((u) => [`late-${u}`, 1]).sort(),
    );
    expect(await ctx.q.queue.getJobCountByTypes('failed')).toBe(0);
    for (const s of old) expect(await ctx.store.getSession(s.sessionId)).toBeNull();
  }, 45_000);
});

/** The promise's value, or undefined if it does not settle within `ms` (the timer is cleared either way). */
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
