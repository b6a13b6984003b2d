import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { commandId } from '#revocation';
import { SessionStore } from '#session-store';
import { deliver, type DeliveryOutcome, userDeleted } from '../support/cluster-deliveries.js';
import { type ServiceProcess, spawnGatewayAndWorker } from '../support/cluster-processes.js';
import { type FailoverCluster, startFailoverCluster } from '../support/cluster-redis.js';
import { CLUSTER_QUEUE_PREFIX as QUEUE_PREFIX, clusterEnv, clusterSide } from '../support/cluster-service.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { waitFor } from '../support/redis.js';

const SECRET = 'cluster-lag-webhook-secret';
const TAG_SECRET = 'cluster-lag-tag-secret-0123456789';
const QUEUE_KEY = `${QUEUE_PREFIX}:revocations:id`;

/**
 * Redis replication is asynchronous: a master answers a write before its replica has it, and a
 * replica promoted after the master dies lacks whatever it had not yet applied. These tests make that
 * window deterministic (CLIENT PAUSE WRITE on a replica holds back its replication stream, as a slow
 * replica or link would; it still takes part in the cluster and is elected when its master dies) and
 * check invariant 6 of the design across it: a delivery answered 200 is never lost, nor its effect.
 * Both hold only because the gateway (ENQUEUE_WAIT_REPLICAS, after enqueueing) and the worker
 * (SESSION_WAIT_REPLICAS, after revoking) wait for a replica to have the write (Redis WAIT) before
 * they acknowledge it; without either setting, the matching test below fails.
 */
describe('Redis Cluster failover while a master’s replica lags', () => {
  let cluster: FailoverCluster;
  let gateway: ServiceProcess;
  let worker: ServiceProcess;
  let redis: Cluster;
  let store: SessionStore;
  let queues: Record<string, Queue>;
  const paused = new Set<Redis>();

  /** The master REDIS_URL names (never killed here). */
  let seedMaster: number;

  beforeAll(async () => {
    cluster = await startFailoverCluster(3, 1);
    const queueMaster = await cluster.masterOf(QUEUE_KEY);
    [, seedMaster] = (await cluster.topology())
      .filter((n) => n.role === 'master' && n.port !== queueMaster)
      .map((n) => n.port) as [number, number];
    // A seed that survives both failovers: losing the seed is cluster-failover.e2e-spec.ts's subject.
    const env = clusterEnv(
      `redis://127.0.0.1:${seedMaster}`,
      { webhook: SECRET, tag: TAG_SECRET },
      {
        JOB_BACKOFF_MS: '100',
        LOCK_DURATION_MS: '5000',
        STALLED_INTERVAL_MS: '1000',
        // Acknowledge a delivery only once the queue master's replica has it...
        ENQUEUE_WAIT_REPLICAS: '1',
        // ...and complete a revocation only once the session master's replica has it.
        SESSION_WAIT_REPLICAS: '1',
        SESSION_WAIT_TIMEOUT_MS: '500',
        // Attempts enough to outlast a failover (each waits 500 ms, backoff from 100 ms).
        JOB_ATTEMPTS: '20',
      },
    );
    ({ gateway, worker } = await spawnGatewayAndWorker(env));
    ({ redis, store, queues } = clusterSide(cluster, TAG_SECRET));
  }, 60_000);

  afterAll(async () => {
    for (const node of paused) await node.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    await Promise.all([gateway?.stop(), worker?.stop()]);
    await Promise.all(Object.values(queues ?? {}).map((q) => q.close().catch(() => undefined)));
    redis?.disconnect();
    await cluster?.stop();
  });

  /** A user whose keys (session, not-before stamp) live on the master on `port`. */
  async function userOn(port: number, name: string): Promise<string> {
    for (let n = 0; n < 1000; n++) {
      const userId = `${name}-${n}`;
      if ((await cluster.masterOf(store.keys.notBefore(store.keys.userTag(userId)))) === port) return userId;
    }
    throw new Error(`no user of ${name}-* hashes to the master on ${port}`);
  }

  /**
   * Gives `userId` a session issued an hour ago, makes sure the replica of `master` has it (and
   * everything before it), then pauses that replica's replication stream.
   */
  async function sessionThenLag(master: number, userId: string) {
    const session = await store.createSession({ userId, ttlSeconds: 3600, issuedAt: Date.now() - 3_600_000 });
    expect(await cluster.node(master).call('WAIT', '1', '5000')).toBe(1);
    const [replicaPort] = (await cluster.replicasOf(master)) as [number];
    const replica = cluster.node(replicaPort);
    await replica.call('CLIENT', 'PAUSE', '30000', 'WRITE');
    paused.add(replica);
    return { session, replicaPort, replica };
  }

  /** Kills `master`, lets its (lagging) replica apply what it has, and waits for it to take over. */
  async function failOver(master: number, replica: Redis, replicaPort: number, key: string) {
    await cluster.kill(master);
    await replica.call('CLIENT', 'UNPAUSE');
    paused.delete(replica);
    await cluster.waitHealthy(20_000, { replicas: 0 });
    expect(await cluster.masterOf(key)).toBe(replicaPort);
  }

  /** PingOne's way: deliver, retrying on anything but a 200; resolves after the first answer. */
  async function startDelivery(eventId: string, userId: string) {
    const statuses: number[] = [];
    const delivery: Promise<DeliveryOutcome> = deliver(
      gateway.url,
      SECRET,
      [userDeleted(eventId, userId, Date.now())],
      { deadlineMs: 40_000, retryMs: 200, onAttempt: (s) => statuses.push(s) },
    );
    await waitFor(() => statuses.length > 0, 'the gateway to answer the first attempt', 10_000);
    return { delivery, firstAnswer: statuses[0] };
  }

  const refused = (sessionId: string) =>
    waitFor(async () => (await store.getSession(sessionId)) === null, 'the revocation', 5000).then(
      () => true,
      () => false,
    );

  it('with ENQUEUE_WAIT_REPLICAS, an acknowledged delivery survives the failover of the queue master', async () => {
    const queueMaster = await cluster.masterOf(QUEUE_KEY);
    const eventId = 'e5000000-0000-4000-8000-000000000001';
    // The user's keys live on the queue's master too: what the worker may already have done there
    // before it dies (the revocation stamp) is held back from the replica like the job itself.
    const userId = await userOn(queueMaster, 'queue-shard-user');
    const { session, replica, replicaPort } = await sessionThenLag(queueMaster, userId);

    const { delivery, firstAnswer } = await startDelivery(eventId, userId);
    const revokedOnTheMaster = firstAnswer === 200 && (await refused(session.sessionId));
    await failOver(queueMaster, replica, replicaPort, QUEUE_KEY);

    const outcome = await delivery;
    await waitForQueuesIdle([queues['revocations']!, queues['revocations-priority']!], 30_000);
    const job = await queues['revocations']!.getJob(commandId('pingone', eventId));
    const measured = {
      attempts: outcome.attempts,
      revokedOnTheMaster,
      jobAfterFailover: job ? await job.getState() : 'missing',
      sessionReadableAfterFailover: (await store.getSession(session.sessionId)) !== null,
    };
    console.log(`queue master failover, lagging replica: ${JSON.stringify(measured)}`);

    // Acknowledged (at once, or by a retry after the failover)...
    expect(outcome.ackedAt).toBeDefined();
    // ...so its effect holds: the user's old session is refused.
    expect(measured).toMatchObject({ sessionReadableAfterFailover: false });
    expect({ gateway: gateway.exitCode(), worker: worker.exitCode() }).toEqual({
      gateway: null,
      worker: null,
    });
  }, 60_000);

  it('with SESSION_WAIT_REPLICAS, a revocation survives the failover of the session master', async () => {
    // A master that holds neither the queue nor REDIS_URL's seed, and still has its replica.
    const queueMaster = await cluster.masterOf(QUEUE_KEY);
    const sessionMaster = (await cluster.topology()).find(
      (n) =>
        n.role === 'master' &&
        n.slots.length > 0 &&
        !n.flags.includes('fail') &&
        n.port !== queueMaster &&
        n.port !== seedMaster,
    )!.port;
    const eventId = 'e5000000-0000-4000-8000-000000000002';
    const userId = await userOn(sessionMaster, 'session-shard-user');
    const stampKey = store.keys.notBefore(store.keys.userTag(userId));
    const { session, replica, replicaPort } = await sessionThenLag(sessionMaster, userId);

    const { delivery } = await startDelivery(eventId, userId);
    expect((await delivery).ackedAt).toBeDefined();
    // The worker stamps the master, but the lagging replica cannot confirm it: the job does not
    // complete, its attempts fail and are retried.
    expect(await refused(session.sessionId)).toBe(true);
    const jobId = commandId('pingone', eventId);
    await waitFor(
      async () => ((await queues['revocations']!.getJob(jobId))?.attemptsMade ?? 0) >= 1,
      'an attempt to fail for want of a replica',
      10_000,
    );
    const beforeFailover = await queues['revocations']!.getJob(jobId);
    expect(await beforeFailover!.getState()).not.toBe('completed');
    expect(beforeFailover!.failedReason).toMatch(/replicas acknowledged/);

    await failOver(sessionMaster, replica, replicaPort, stampKey);
    // The attempts that failed while the replica lagged grew the exponential backoff: on a slow machine
    // the next one can be due after this test's wait. The retry after the failover is the subject, not
    // its backoff, so a job waiting out its backoff is retried now, each time it is (an attempt right
    // after the failover can still fail, on a slot map not yet refreshed).
    await waitFor(
      async () => {
        const job = await queues['revocations']!.getJob(jobId);
        const state = await job?.getState();
        if (state === 'delayed')
          await job!.promote().catch((err: Error) => {
            if (!/not in the delayed state/i.test(err.message)) throw err;
          });
        return state === 'completed';
      },
      'the job to complete after the failover',
      30_000,
    );
    await waitForQueuesIdle([queues['revocations']!, queues['revocations-priority']!], 30_000);
    const job = await queues['revocations']!.getJob(jobId);
    const measured = {
      attemptsMade: job?.attemptsMade,
      job: job ? await job.getState() : 'missing',
      sessionReadableAfterFailover: (await store.getSession(session.sessionId)) !== null,
    };
    console.log(`session master failover, lagging replica: ${JSON.stringify(measured)}`);
    expect(measured).toMatchObject({ job: 'completed', sessionReadableAfterFailover: false });
    expect({ gateway: gateway.exitCode(), worker: worker.exitCode() }).toEqual({
      gateway: null,
      worker: null,
    });
  }, 90_000);
});
