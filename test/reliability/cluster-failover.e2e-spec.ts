import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Queue } from 'bullmq';
import type { Cluster } from 'ioredis';
import { commandId } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { deliver, type DeliveryOutcome, userDeleted } from '../support/cluster-deliveries.js';
import { type ServiceProcess, spawnGatewayAndWorker, spawnService } from '../support/cluster-processes.js';
import { type FailoverCluster, startFailoverCluster } from '../support/cluster-redis.js';
import {
  CLUSTER_QUEUE_PREFIX as QUEUE_PREFIX,
  clusterEnv,
  clusterSide,
  sessionsFromAnHourAgo,
} from '../support/cluster-service.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { freePorts, waitFor } from '../support/redis.js';

const SECRET = 'cluster-failover-webhook-secret';
const TAG_SECRET = 'cluster-failover-tag-secret-0123456789';
/** Users with a session each; one delivery revokes one of them. */
const POOL = 3000;
const SENDERS = 4;
const ACKED_BEFORE_KILL = 100;
const ACKED_AFTER_KILL = 100;

const eventId = (i: number) => `e4000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/**
 * `seed`: which node REDIS_URL names. `survivor`: a master that is not killed. `killed`: the queue's
 * master itself, the one killed, with every other node given in REDIS_CLUSTER_NODES: each
 * reconnection (BullMQ's blocking connections are duplicates of the cluster client) starts from the
 * seeds, so with that one seed alone the worker would be left with nowhere to reconnect.
 */
function failoverSuite(seedChoice: 'survivor' | 'killed') {
  describe(`Redis Cluster failover: a master is killed during a stream of deliveries (seed: ${seedChoice})`, () => {
    let cluster: FailoverCluster;
    let gateway: ServiceProcess;
    let worker: ServiceProcess;
    let redis: Cluster;
    let store: SessionStore;
    let queues: Record<string, Queue>;
    const users = Array.from({ length: POOL }, (_, i) => `stream-user-${i}`);
    let sessions: CreatedSession[];
    let env: Record<string, string>;

    beforeAll(async () => {
      cluster = await startFailoverCluster(3, 1);
      const queueMaster = await cluster.masterOf(`${QUEUE_PREFIX}:revocations:id`);
      const nodes = await cluster.topology();
      const seed =
        seedChoice === 'killed'
          ? queueMaster
          : nodes.find((n) => n.role === 'master' && n.port !== queueMaster)!.port;
      env = clusterEnv(
        `redis://127.0.0.1:${seed}`,
        { webhook: SECRET, tag: TAG_SECRET },
        {
          ...(seedChoice === 'killed'
            ? {
                REDIS_CLUSTER_NODES: nodes
                  .filter((n) => n.port !== seed)
                  .map((n) => `127.0.0.1:${n.port}`)
                  .join(','),
              }
            : {}),
          JOB_BACKOFF_MS: '200',
          // A job active on the dead master is taken back as stalled within seconds, not the default minute.
          LOCK_DURATION_MS: '5000',
          STALLED_INTERVAL_MS: '1000',
        },
      );
      ({ gateway, worker } = await spawnGatewayAndWorker(env));
      ({ redis, store, queues } = clusterSide(cluster, TAG_SECRET));
      sessions = await sessionsFromAnHourAgo(store, users);
    }, 60_000);

    afterAll(async () => {
      await Promise.all([gateway?.stop(), worker?.stop()]);
      await Promise.all(Object.values(queues ?? {}).map((q) => q.close().catch(() => undefined)));
      redis?.disconnect();
      await cluster?.stop();
    });

    it('the replica takes over, the service recovers without a restart, and no acknowledged event is lost', async () => {
      const queueKey = `${QUEUE_PREFIX}:revocations:id`;
      const queueMaster = await cluster.masterOf(queueKey);
      const [replica] = await cluster.replicasOf(queueMaster);
      expect(replica).toBeDefined();

      // The stream: SENDERS concurrent senders, each delivering one event at a time, retrying until a 200.
      const results: (DeliveryOutcome & { i: number })[] = [];
      let next = 0;
      let stop = false;
      const sender = async () => {
        while (!stop && next < POOL) {
          const i = next++;
          const outcome = await deliver(
            gateway.url,
            SECRET,
            [userDeleted(eventId(i), users[i]!, Date.now())],
            {
              deadlineMs: 30_000,
              retryMs: 100,
            },
          );
          results.push({ ...outcome, i });
        }
      };
      const senders = Array.from({ length: SENDERS }, () => sender());
      const acked = (after = 0) => results.filter((r) => r.ackedAt !== undefined && r.ackedAt > after).length;

      await waitFor(
        () => acked() >= ACKED_BEFORE_KILL,
        `${ACKED_BEFORE_KILL} acknowledged deliveries`,
        20_000,
      );
      const killedAt = Date.now();
      await cluster.kill(queueMaster);
      await cluster.waitHealthy(20_000, { replicas: 0 });
      const healthyAt = Date.now();
      expect(await cluster.masterOf(queueKey)).toBe(replica);
      await waitFor(
        () => acked(healthyAt) >= ACKED_AFTER_KILL,
        `${ACKED_AFTER_KILL} acknowledged deliveries after the failover`,
        30_000,
      );
      stop = true;
      await Promise.all(senders);

      const revocations = [queues['revocations']!, queues['revocations-priority']!];
      await waitForQueuesIdle(revocations, 30_000);

      // Every acknowledged event's effect is applied: its user's old session is refused.
      const ackedResults = results.filter((r) => r.ackedAt !== undefined);
      const stillReadable = await inBatches(ackedResults, 200, async (r) =>
        (await store.getSession(sessions[r.i]!.sessionId)) !== null ? r : null,
      );
      const lost = await Promise.all(
        stillReadable
          .filter((r): r is (typeof ackedResults)[number] => r !== null)
          .map(async (r) => ({
            i: r.i,
            ackedMsBeforeKill: killedAt - r.ackedAt!,
            job: (await queues['revocations']!.getJob(commandId('pingone', eventId(r.i))))?.id ?? 'missing',
          })),
      );
      const firstAckAfterKill = Math.min(
        ...results.filter((r) => r.ackedAt! > killedAt).map((r) => r.ackedAt!),
      );
      const measured = {
        deliveries: results.length,
        acknowledged: ackedResults.length,
        neverAcknowledged: results.length - ackedResults.length,
        refusedAttempts: results.reduce((n, r) => n + r.attempts.filter((s) => s !== 200).length, 0),
        statuses: [...new Set(results.flatMap((r) => r.attempts))].sort(),
        failoverMs: healthyAt - killedAt,
        firstAckAfterKillMs: firstAckAfterKill - killedAt,
        lost,
        failedJobs: await queues['revocations']!.getJobCountByTypes('failed'),
      };
      console.log(`cluster failover: ${JSON.stringify(measured)}`);

      expect(measured.lost).toEqual([]);
      expect(measured.neverAcknowledged).toBe(0);
      expect(measured.failedJobs).toBe(0);
      // Recovered without a restart: the same two processes, still running, still ready.
      expect({ gateway: gateway.exitCode(), worker: worker.exitCode() }).toEqual({
        gateway: null,
        worker: null,
      });
      for (const s of [gateway, worker])
        await waitFor(
          async () =>
            (await fetch(`${s.url}/health/ready`, { signal: AbortSignal.timeout(2000) })).status === 200,
          `${s.role} readiness after the failover`,
          10_000,
        );
    }, 90_000);

    it('once the queue is idle again, a new delivery is still taken and applied: the worker found the new master', async () => {
      // An idle BullMQ worker waits for jobs on its own blocking connections (duplicates of the cluster
      // client), one per queue it works (revocations, priority, maintenance): those too must have
      // followed the failover. Each reconnects through the surviving seeds on its own (the cluster's
      // back-off, up to 2 s a try, then BullMQ's 1 s run retry); with the seed killed and a CI machine
      // running other suites, one took over 30 s twice. So the test waits for them (up to 20 s, and
      // says how long it took), but what it asserts is the behaviour: the delivery below is applied.
      const master = await cluster.masterOf(`${QUEUE_PREFIX}:revocations:id`);
      const waitStarted = Date.now();
      const blocking = async () =>
        ((await cluster.node(master).client('LIST')) as string)
          .split('\n')
          .filter((line) => line.includes('cmd=bzpopmin')).length;
      const allBlocking = await waitFor(
        async () => (await blocking()) >= 3,
        'blocking connections',
        20_000,
      ).then(
        () => true,
        () => false,
      );
      const blockingAfterMs = Date.now() - waitStarted;
      const blockingThen = await blocking();
      const i = POOL - 1;
      const outcome = await deliver(gateway.url, SECRET, [userDeleted(eventId(i), users[i]!, Date.now())], {
        deadlineMs: 10_000,
      });
      expect(outcome.ackedAt).toBeDefined();
      const job = () => queues['revocations']!.getJob(commandId('pingone', eventId(i)));
      const applied = await waitFor(
        async () =>
          (await store.getSession(sessions[i]!.sessionId)) === null &&
          (await (await job())?.getState()) === 'completed',
        'the revocation',
        45_000,
      ).then(
        () => true,
        () => false,
      );
      const workerLog = worker.output();
      const measured = {
        blockingAfterMs,
        allBlocking,
        blockingThen,
        applied,
        job: (await (await job())?.getState()) ?? 'missing',
        workerErrors: (workerLog.match(/"msg":"worker of /g) ?? []).length,
        noStartupNode: (workerLog.match(/None of startup nodes is available/g) ?? []).length,
      };
      console.log(`cluster failover, idle worker afterwards: ${JSON.stringify(measured)}`);
      expect(measured).toMatchObject({ applied: true, job: 'completed' });
    }, 90_000);

    if (seedChoice === 'killed')
      it('with the seed still down, new processes start through the other seeds and do the work', async () => {
        // The node REDIS_URL names stays dead: without REDIS_CLUSTER_NODES nothing could connect.
        await Promise.all([gateway.stop(), worker.stop()]);
        const [gatewayPort, workerPort] = (await freePorts(2)) as [number, number];
        // One after the other, so a failure leaves nothing running that afterAll does not know of.
        gateway = await spawnService('gateway', gatewayPort, env);
        worker = await spawnService('worker', workerPort, env);
        const i = POOL - 2;
        const outcome = await deliver(gateway.url, SECRET, [userDeleted(eventId(i), users[i]!, Date.now())], {
          deadlineMs: 10_000,
        });
        expect(outcome.ackedAt).toBeDefined();
        await waitFor(
          async () =>
            (await store.getSession(sessions[i]!.sessionId)) === null &&
            (await (await queues['revocations']!.getJob(commandId('pingone', eventId(i))))?.getState()) ===
              'completed',
          'the revocation by the new worker',
          15_000,
        );
      }, 60_000);
  });
}

failoverSuite('survivor');
failoverSuite('killed');
