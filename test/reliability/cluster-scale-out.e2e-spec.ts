import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Job, Queue } from 'bullmq';
import type { Cluster } from 'ioredis';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { deliver, userDeleted } from '../support/cluster-deliveries.js';
import { type ServiceProcess, spawnServices } from '../support/cluster-processes.js';
import { type FailoverCluster, startFailoverCluster } from '../support/cluster-redis.js';
import {
  CLUSTER_QUEUE_PREFIX as QUEUE_PREFIX,
  clusterEnv,
  clusterSide,
  sessionsFromAnHourAgo,
} from '../support/cluster-service.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { waitFor } from '../support/redis.js';
import { QueueKeys } from '#revocation';

const SECRET = 'cluster-scale-webhook-secret';
const TAG_SECRET = 'cluster-scale-tag-secret-0123456789';
const PERIOD = 1000;
const USERS = 600;
const EVENTS_PER_DELIVERY = 5;

const eventId = (i: number) => `e6000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** The sum of a Prometheus counter's samples whose labels include `match`. */
async function counter(url: string, name: string, match: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(match))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

describe('Redis Cluster: two gateway and two worker processes share the load', () => {
  let cluster: FailoverCluster;
  let gateways: ServiceProcess[] = [];
  let workers: ServiceProcess[] = [];
  let redis: Cluster;
  let store: SessionStore;
  let queues: Record<string, Queue>;
  let workersUpAt: number;
  const users = Array.from({ length: USERS }, (_, i) => `scale-user-${i}`);
  let sessions: CreatedSession[];

  beforeAll(async () => {
    cluster = await startFailoverCluster(3, 1);
    const env = clusterEnv(
      cluster.seedUrl,
      { webhook: SECRET, tag: TAG_SECRET },
      { SWEEP_EVERY_MS: String(PERIOD), MEMORY_WATCH_EVERY_MS: String(PERIOD) },
    );
    const started = await spawnServices(['gateway', 'gateway', 'worker', 'worker'], env);
    gateways = started.slice(0, 2);
    workers = started.slice(2);
    workersUpAt = Date.now();
    ({ redis, store, queues } = clusterSide(cluster, TAG_SECRET));
    sessions = await sessionsFromAnHourAgo(store, users);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...gateways, ...workers].map((s) => s.stop()));
    await Promise.all(Object.values(queues ?? {}).map((q) => q.close().catch(() => undefined)));
    await cluster?.stop();
  });

  it('deliveries to both gateways are all applied, by both workers', async () => {
    // Deliveries of EVENTS_PER_DELIVERY events, alternating between the gateways, 8 at a time.
    const deliveries = Array.from({ length: USERS / EVENTS_PER_DELIVERY }, (_, d) => d);
    const outcomes = await inBatches(deliveries, 8, (d) =>
      deliver(
        gateways[d % 2]!.url,
        SECRET,
        Array.from({ length: EVENTS_PER_DELIVERY }, (_, k) => {
          const i = d * EVENTS_PER_DELIVERY + k;
          return userDeleted(eventId(i), users[i]!, Date.now());
        }),
        { deadlineMs: 20_000 },
      ),
    );
    expect(outcomes.filter((o) => o.ackedAt === undefined)).toEqual([]);
    await waitForQueuesIdle([queues['revocations']!, queues['revocations-priority']!], 30_000);

    const readable = await inBatches(
      sessions,
      200,
      async (s) => (await store.getSession(s.sessionId)) !== null,
    );
    expect(readable.filter(Boolean)).toHaveLength(0);
    expect(await queues['revocations']!.getJobCountByTypes('failed')).toBe(0);

    // Each gateway took its half; each worker did a share of the jobs, and together all of them.
    const enqueued = await Promise.all(
      gateways.map((g) => counter(g.url, 'session_revoker_events_received_total', 'outcome="enqueued"')),
    );
    expect(enqueued).toEqual([USERS / 2, USERS / 2]);
    const completed = await Promise.all(
      workers.map((w) => counter(w.url, 'session_revoker_jobs_total', 'outcome="completed"')),
    );
    console.log(`scale-out: jobs completed per worker ${JSON.stringify(completed)}`);
    expect(completed.every((n) => n > 0)).toBe(true);
    expect(completed[0]! + completed[1]!).toBe(USERS);
  }, 60_000);

  it('the maintenance job schedulers exist once each and run once per period, not once per worker', async () => {
    const maintenance = queues['maintenance']!;
    const schedulers = await maintenance.getJobSchedulers();
    expect(
      schedulers
        .map((s) => ({ key: s.key, name: s.name, every: Number(s.every) }))
        .sort((a, b) => a.key.localeCompare(b.key)),
    ).toEqual([
      { key: 'memory-watch', name: 'memory-watch', every: PERIOD },
      { key: 'sweep', name: 'sweep', every: PERIOD },
    ]);

    const completed = async (name: string) =>
      (await maintenance.getJobs(['completed'])).filter((j: Job) => j.name === name);
    const since = Math.max(workersUpAt, Date.now() - 2000);
    await waitFor(
      async () =>
        (await completed('sweep')).filter((j) => j.processedOn! >= since).length >= 5 &&
        (await completed('memory-watch')).filter((j) => j.processedOn! >= since).length >= 5,
      'five runs of each scheduled job',
      20_000,
    );
    const until = Date.now();
    for (const name of ['sweep', 'memory-watch']) {
      const runs = (await completed(name))
        .filter((j) => j.processedOn! >= since && j.processedOn! <= until)
        .sort((a, b) => a.processedOn! - b.processedOn!);
      const gaps = runs.slice(1).map((j, k) => j.processedOn! - runs[k]!.processedOn!);
      // One run per period over the window (plus one in flight at each end); doubled runs would be ~2x.
      expect({ name, runs: runs.length <= Math.floor((until - since) / PERIOD) + 2 }).toEqual({
        name,
        runs: true,
      });
      expect({ name, gaps, tooClose: gaps.filter((g) => g < PERIOD / 2) }).toEqual({
        name,
        gaps,
        tooClose: [],
      });
    }
    expect(await maintenance.getJobCountByTypes('failed')).toBe(0);
    expect((await maintenance.getJobSchedulers()).length).toBe(2);
    // The memory watch read the cluster and recorded it where any process's readiness finds it.
    expect(await redis.pttl(new QueueKeys(QUEUE_PREFIX).memory)).toBeGreaterThan(0);
    for (const s of [...gateways, ...workers])
      expect({ role: s.role, exit: s.exitCode() }).toEqual({ role: s.role, exit: null });
  }, 40_000);
});
