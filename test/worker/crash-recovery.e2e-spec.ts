import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type CreatedSession, SessionStore } from '#session-store';
import { type ChildWorker, spawnWorker } from '../support/child-worker.js';
import { command, inBatches } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const TAG_SECRET = 'crash-tag-secret-0123456789';
/**
 * BullMQ takes a dead worker's jobs back once their lock expired (LOCK_DURATION_MS) and a stalled
 * check saw them twice (STALLED_INTERVAL_MS). The defaults (30 s each) make that a minute; these
 * settings make it seconds. Both the killed worker (its locks) and the recovering one use them.
 */
const FAST_RECOVERY = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };

describe('SIGKILL mid-job: another worker takes the jobs back and nothing is lost', () => {
  let redis: OwnRedis;
  let q: TestQueue;
  let store: SessionStore;
  let child: ChildWorker | undefined;
  let recoverer: TestWorker | undefined;
  let env: Record<string, string>;
  const users = Array.from({ length: 6 }, (_, i) => `crash-user-${i}`);

  beforeAll(async () => {
    redis = await startOwnRedis('crash');
    env = {
      REDIS_URL: redis.url,
      QUEUE_REDIS_URL: REDIS_URL,
      QUEUE_PREFIX: `{${uniquePrefix('crash-q')}}`,
      SESSION_PREFIX: uniquePrefix('crash-s'),
      SESSION_TAG_SECRET: TAG_SECRET,
      WORKER_PORT: '0',
      WORKER_CONCURRENCY: '4',
      ...FAST_RECOVERY,
    };
    store = new SessionStore({ redis: redis.client, prefix: env['SESSION_PREFIX'], tagSecret: TAG_SECRET });
    q = openQueue(env);
    child = await spawnWorker(env);
  });
  afterAll(async () => {
    await child?.stop();
    await recoverer?.close();
    await q?.close();
    await redis?.stop();
  });

  it('the killed worker’s active jobs are recovered as stalled and complete; newer sessions survive', async () => {
    const revokedAt = Date.now() - 60_000;
    const old = await inBatches(users, 6, (userId) =>
      store.createSession({ userId, ttlSeconds: 3600, issuedAt: revokedAt - 3_600_000 }),
    );
    // Logins after the event: a revocation run late (after recovery) must not touch them.
    const newer = await inBatches(users, 6, (userId) => store.createSession({ userId, ttlSeconds: 3600 }));

    await redis.pauseWrites();
    const commands = users.map((u) => command(`crash-${u}`, { type: 'user', userId: u }, revokedAt));
    await q.enqueue(commands);
    await waitFor(
      async () => (await q.queue.getJobCounts('active'))['active'] === 4,
      '4 active jobs (the concurrency) held by the child worker',
      10_000,
    );
    const held = (await q.queue.getJobs(['active'])).map((j) => j.id!).sort();

    child!.process.kill('SIGKILL');
    expect(await child!.exited).toMatchObject({ code: null, signal: 'SIGKILL' });
    await redis.unpause();
    // Its jobs are still marked active: nobody has finished them.
    expect((await q.queue.getJobs(['active'])).map((j) => j.id!).sort()).toEqual(held);

    recoverer = await startWorker(env);
    await waitForQueuesIdle([q.queue], 20_000);

    const completed = await q.queue.getJobs(['completed']);
    expect(completed.map((j) => j.id).sort()).toEqual(commands.map((c) => c.id).sort());
    expect(await q.queue.getJobCounts('failed', 'active', 'waiting', 'delayed')).toEqual({
      failed: 0,
      active: 0,
      waiting: 0,
      delayed: 0,
    });
    // The four it held came back through the stalled-job check, once each; the others never stalled.
    for (const job of completed)
      expect({ id: job.id, stalled: job.stalledCounter }).toEqual({
        id: job.id,
        stalled: held.includes(job.id!) ? 1 : 0,
      });

    const read = (sessions: CreatedSession[]) =>
      Promise.all(sessions.map(async (s) => (await store.getSession(s.sessionId)) !== null));
    expect(await read(old)).toEqual(users.map(() => false));
    expect(await read(newer)).toEqual(users.map(() => true));
  }, 45_000);
});
