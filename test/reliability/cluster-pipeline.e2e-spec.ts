import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { Job } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { assertQueueRedisPolicy, parseInfo, readRedisMemory } from '#redis';
import { AuditLog, commandId, FAN_OUT_BATCH, QueueKeys, type RevocationCommand } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { type FailoverCluster, startFailoverCluster } from '../support/cluster-redis.js';
import { openQueues, startInProcessGateway } from '../support/cluster-service.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { startWorker } from '../support/worker.js';

const SECRET = 'cluster-pipeline-webhook-secret';
const TAG_SECRET = 'cluster-pipeline-tag-secret-0123456789';
/** The defaults: the queue prefix is hash-tagged, so every BullMQ key of a queue lives in one slot. */
const QUEUE_PREFIX = '{sr}';
const SESSION_PREFIX = 'sr';

const ALICE = '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69';
const BOB = '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e';
const CAROL = '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4';
const CAROL_PING_SESSION = '6f5e4d3c-2b1a-4098-8765-43210fedcba9';
const GROUP = '7c1e9a40-3b2d-4f5e-8a6b-0c9d8e7f6a51';
const GROUP_EVENT = 'e3000001-0000-4000-8000-0000000000c1';
const MEMBERS = 1000;
const OTHERS = 200;

interface Backend {
  name: string;
  env: Record<string, string>;
  /** The test's own client of the same Redis (a Cluster client for the cluster). */
  redis: Redis | Cluster;
}

/** What one run of the scenarios leaves behind, in a form that can be compared across backends. */
interface Outcome {
  fixture: {
    status: number;
    body: unknown;
    stillReadable: Record<string, boolean>;
    audit: { eventId?: string; revoked?: number; result: unknown }[];
    /** The same batch delivered again once its jobs ran: the dedup marks (one MGET) must hold. */
    redelivery: { status: number; body: unknown; jobs: number };
  };
  fanOut: {
    status: number;
    body: unknown;
    membersStillReadable: number;
    othersStillReadable: number;
    parent: { state: string; returnvalue: unknown };
    /** Fan-out batch jobs, the members they name, and the sessions they revoked. */
    children: number;
    childrenMembers: number;
    childrenRevoked: number;
    childrenWithGroupNotBefore: number;
    audit: Record<string, number>;
  };
  failedJobs: number;
  jobsLeft: number;
}

/**
 * The fixture batch and a 1,000-user group fan-out, through the real gateway (HTTP) and worker, on
 * `backend`. Everything the scenarios measure is returned; nothing is asserted here.
 */
async function runScenarios(backend: Backend): Promise<Outcome> {
  const env = {
    ...backend.env,
    QUEUE_PREFIX,
    SESSION_PREFIX,
    PINGONE_WEBHOOK_SECRET: SECRET,
    SESSION_TAG_SECRET: TAG_SECRET,
    CLOCK_SKEW_MS: '0',
    WORKER_CONCURRENCY: '32',
  };
  const store = new SessionStore({
    redis: backend.redis,
    prefix: SESSION_PREFIX,
    tagSecret: TAG_SECRET,
    clockSkewMs: 0,
  });
  const queues = openQueues(backend.redis, QUEUE_PREFIX);
  const all = Object.values(queues);
  // The maintenance queue always holds its next scheduled runs: idle means the revocation queues are.
  const revocations = [queues['revocations']!, queues['revocations-priority']!];
  const gateway = await startInProcessGateway(env);
  const worker = await startWorker(env);
  try {
    const post = (body: string) =>
      request(gateway.app.getHttpServer())
        .post('/webhooks/pingone')
        .set('Authorization', `Bearer ${SECRET}`)
        .set('Content-Type', 'application/json')
        .send(body);
    const readable = async (sessions: CreatedSession[]) =>
      (await inBatches(sessions, 200, async (s) => (await store.getSession(s.sessionId)) !== null)).filter(
        Boolean,
      ).length;

    // The fixture batch: sessions issued before its events (recordedAt 2026-11-20T10:00:0x).
    const before = Date.parse('2026-11-20T09:00:00Z');
    const session = (userId: string, idpSessionId?: string) =>
      store.createSession({
        userId,
        ttlSeconds: 3600,
        issuedAt: before,
        ...(idpSessionId ? { idpSessionId } : {}),
      });
    const sessions: Record<string, CreatedSession> = {
      alice1: await session(ALICE),
      alice2: await session(ALICE),
      bob: await session(BOB),
      carolFromPing: await session(CAROL, CAROL_PING_SESSION),
      carolOtherPing: await session(CAROL, 'another-ping-session'),
      carolPlain: await session(CAROL),
    };
    const fixtureBatch = readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8');
    const fixtureRes = await post(fixtureBatch);
    await waitForQueuesIdle(revocations, 20_000);
    const jobCount = () =>
      queues['revocations']!.getJobCountByTypes('completed', 'waiting', 'active', 'delayed', 'failed');
    const jobsBefore = await jobCount();
    const redeliveryRes = await post(fixtureBatch);
    const redelivery = {
      status: redeliveryRes.status,
      body: redeliveryRes.body as unknown,
      jobs: (await jobCount()) - jobsBefore,
    };
    const stillReadable: Record<string, boolean> = {};
    for (const [name, s] of Object.entries(sessions))
      stillReadable[name] = (await store.getSession(s.sessionId)) !== null;
    const fixtureAudit = await new AuditLog(backend.redis, new QueueKeys(QUEUE_PREFIX).audit, 10_000).read({
      limit: 10,
    });

    // The group fan-out: 1,000 members of GROUP, 200 users outside it, all logged in before it was deleted.
    const deletedAt = Date.now() - 60_000;
    const issuedAt = deletedAt - 3_600_000;
    const members = await inBatches(
      Array.from({ length: MEMBERS }, (_, i) => `member-${i}`),
      100,
      (userId) => store.createSession({ userId, ttlSeconds: 3600, issuedAt, groups: [GROUP, 'everyone'] }),
    );
    const others = await inBatches(
      Array.from({ length: OTHERS }, (_, i) => `other-${i}`),
      100,
      (userId) =>
        store.createSession({
          userId,
          ttlSeconds: 3600,
          issuedAt,
          groups: userNumber(userId) % 2 ? ['everyone'] : [],
        }),
    );
    const fanRes = await post(
      JSON.stringify([
        {
          id: GROUP_EVENT,
          recordedAt: new Date(deletedAt).toISOString(),
          action: { type: 'GROUP.DELETED', description: 'Group Deleted' },
          resources: [{ type: 'GROUP', id: GROUP, name: 'finance-approvers' }],
          result: { status: 'SUCCESS' },
        },
      ]),
    );
    await waitForQueuesIdle(revocations, 30_000);
    const parentId = commandId('pingone', GROUP_EVENT);
    const parent = await queues['revocations']!.getJob(parentId);
    const parentNotBefore = (parent?.data as RevocationCommand | undefined)?.notBefore;
    const children = (await queues['revocations']!.getJobs(['completed'])).filter(
      (j: Job) => j.id !== parentId && j.id!.startsWith(`${parentId}-b`),
    );
    const audit = await new AuditLog(backend.redis, new QueueKeys(QUEUE_PREFIX).audit, 10_000).read({
      limit: 5000,
    });
    // Revocation queues first (jobsLeft counts only them), then the maintenance queue (failed only).
    const counts = await Promise.all(
      [...revocations, queues['maintenance']!].map((q) =>
        q.getJobCounts('failed', 'waiting', 'delayed', 'active', 'prioritized'),
      ),
    );
    return {
      fixture: {
        status: fixtureRes.status,
        body: fixtureRes.body,
        stillReadable,
        audit: fixtureAudit
          .map((a) => ({ eventId: a.eventId, revoked: a.revoked, result: a.result }))
          .sort((a, b) => String(a.eventId).localeCompare(String(b.eventId))),
        redelivery,
      },
      fanOut: {
        status: fanRes.status,
        body: fanRes.body,
        membersStillReadable: await readable(members),
        othersStillReadable: await readable(others),
        parent: { state: parent ? await parent.getState() : 'missing', returnvalue: parent?.returnvalue },
        children: children.length,
        childrenMembers: children.reduce((n, j) => {
          const target = (j.data as RevocationCommand).target;
          return n + (target.type === 'users' ? target.userIds.length : 0);
        }, 0),
        childrenRevoked: children.reduce(
          (n, j) => n + ((j.returnvalue as { revoked?: number })?.revoked ?? 0),
          0,
        ),
        childrenWithGroupNotBefore: children.filter(
          (j) => (j.data as RevocationCommand).notBefore === parentNotBefore,
        ).length,
        audit: audit
          .filter((a) => a.eventId === GROUP_EVENT)
          .reduce<Record<string, number>>(
            (n, a) => ({ ...n, [String(a.result)]: (n[String(a.result)] ?? 0) + 1 }),
            {},
          ),
      },
      failedJobs: counts.reduce((n, c) => n + (c['failed'] ?? 0), 0),
      jobsLeft: counts
        .slice(0, revocations.length)
        .reduce(
          (n, c) =>
            n + (c['waiting'] ?? 0) + (c['delayed'] ?? 0) + (c['active'] ?? 0) + (c['prioritized'] ?? 0),
          0,
        ),
    };
  } finally {
    await worker.close();
    await gateway.close();
    await Promise.all(all.map((q) => q.close()));
  }
}

const userNumber = (userId: string) => Number(userId.split('-')[1]);

/** Keys matching `pattern` on each master (by port). */
async function keysPerMaster(cluster: FailoverCluster, pattern: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const n of (await cluster.topology()).filter((x) => x.role === 'master')) {
    const node = cluster.node(n.port);
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    out.set(n.port, count);
  }
  return out;
}

describe('Redis Cluster (3 masters, 1 replica each): the pipeline gives the same results as on a single Redis', () => {
  let single: OwnRedis;
  let cluster: FailoverCluster;
  let singleOutcome: Outcome;

  beforeAll(async () => {
    [single, cluster] = await Promise.all([startOwnRedis('cluster-single'), startFailoverCluster(3, 1)]);
  }, 40_000);
  afterAll(async () => {
    await cluster?.stop();
    await single?.stop();
  });

  it('the cluster has three masters, each with one attached replica, and is ok', async () => {
    const nodes = await cluster.topology();
    const masters = nodes.filter((n) => n.role === 'master');
    expect(masters).toHaveLength(3);
    for (const m of masters) {
      const replicas = nodes.filter((n) => n.role === 'replica' && n.masterId === m.id);
      expect(replicas).toHaveLength(1);
      expect(await cluster.node(replicas[0]!.port).info('replication')).toMatch(/master_link_status:up/);
    }
    expect(await cluster.node(masters[0]!.port).cluster('INFO')).toMatch(/cluster_state:ok/);
  });

  it('a queue cluster with one evicting master is refused at start-up, whichever master it is', async () => {
    const masters = (await cluster.topology()).filter((n) => n.role === 'master');
    const client = cluster.client();
    try {
      await expect(assertQueueRedisPolicy(client, false)).resolves.toBe('noeviction');
      for (const m of masters) {
        await cluster.node(m.port).config('SET', 'maxmemory-policy', 'allkeys-lru');
        try {
          await expect(assertQueueRedisPolicy(client, false)).rejects.toThrow(
            /maxmemory-policy allkeys-lru.*ALLOW_EVICTING_QUEUE_REDIS/s,
          );
        } finally {
          await cluster.node(m.port).config('SET', 'maxmemory-policy', 'noeviction');
        }
      }
    } finally {
      client.disconnect();
    }
  });

  it('the memory watch reads every master: one near its own maxmemory makes the role degraded', async () => {
    const masters = (await cluster.topology()).filter((n) => n.role === 'master');
    const client = cluster.client();
    try {
      expect(await readRedisMemory(client, 'sessions', 0.9)).toMatchObject({ maxmemory: 0, degraded: false });
      for (const m of masters) {
        const node = cluster.node(m.port);
        const used = Number(parseInfo(await node.info('memory')).get('used_memory'));
        // Whichever master it is, the reading is that master's.
        await node.config('SET', 'maxmemory', String(Math.ceil(used / 0.95)));
        try {
          const reading = await readRedisMemory(client, 'sessions', 0.9);
          expect(reading).toMatchObject({ maxmemory: Math.ceil(used / 0.95), degraded: true });
        } finally {
          await node.config('SET', 'maxmemory', '0');
        }
      }
    } finally {
      client.disconnect();
    }
  });

  it('on a single Redis (the baseline)', async () => {
    singleOutcome = await runScenarios({
      name: 'single',
      env: { REDIS_URL: single.url },
      redis: single.client,
    });
    expect(singleOutcome).toEqual({
      fixture: {
        status: 200,
        body: { received: 5, enqueued: 3, duplicates: 0, ignored: 2, quarantined: 0 },
        stillReadable: {
          alice1: false,
          alice2: false,
          bob: false,
          carolFromPing: false,
          carolOtherPing: true,
          carolPlain: true,
        },
        audit: [
          { eventId: 'e1000001-0000-4000-8000-000000000001', revoked: 2, result: 'done' },
          { eventId: 'e1000001-0000-4000-8000-000000000002', revoked: 1, result: 'done' },
          { eventId: 'e1000001-0000-4000-8000-000000000003', revoked: 1, result: 'done' },
        ],
        redelivery: {
          status: 200,
          body: { received: 5, enqueued: 0, duplicates: 3, ignored: 2, quarantined: 0 },
          jobs: 0,
        },
      },
      fanOut: {
        status: 200,
        body: { received: 1, enqueued: 1, duplicates: 0, ignored: 0, quarantined: 0 },
        membersStillReadable: 0,
        othersStillReadable: OTHERS,
        parent: { state: 'completed', returnvalue: { revoked: 0, fannedOut: MEMBERS } },
        // One job per FAN_OUT_BATCH members, one session each; the fan-out is one audit entry.
        children: MEMBERS / FAN_OUT_BATCH,
        childrenMembers: MEMBERS,
        childrenRevoked: MEMBERS,
        childrenWithGroupNotBefore: MEMBERS / FAN_OUT_BATCH,
        audit: { fanned_out: 1 },
      },
      failedJobs: 0,
      jobsLeft: 0,
    });
  }, 60_000);

  it('on the cluster (REDIS_CLUSTER=true, REDIS_URL a seed master): the same outcome', async () => {
    expect(singleOutcome).toBeDefined();
    const client = cluster.client();
    const outcome = await runScenarios({
      name: 'cluster',
      env: { REDIS_URL: cluster.seedUrl, REDIS_CLUSTER: 'true' },
      redis: client,
    });
    expect(outcome).toEqual(singleOutcome);

    // And it really is spread: user keys on every master, every queue key on the master of {sr}'s slot.
    const sessionKeys = await keysPerMaster(cluster, `${SESSION_PREFIX}:*`);
    expect([...sessionKeys.values()].every((n) => n > 100)).toBe(true);
    const queueKeys = await keysPerMaster(cluster, `${QUEUE_PREFIX}:*`);
    const queueMaster = await cluster.masterOf(`${QUEUE_PREFIX}:revocations:id`);
    expect(queueKeys.get(queueMaster)).toBeGreaterThan(0);
    expect([...queueKeys].filter(([port, n]) => port !== queueMaster && n > 0)).toEqual([]);
  }, 60_000);
});
