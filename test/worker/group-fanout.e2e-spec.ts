import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { AuditLog, commandId, FAN_OUT_BATCH, QueueKeys, RevocationCommand } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { command, inBatches } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const GROUP = '7c1e9a40-3b2d-4f5e-8a6b-0c9d8e7f6a51';
const MEMBERS = 1000;
const OTHERS = 200;

/** A PingOne ACTIVITY event saying group `groupId` was deleted at `at`. */
const groupDeleted = (eventId: string, groupId: string, at: number) => ({
  id: eventId,
  recordedAt: new Date(at).toISOString(),
  action: { type: 'GROUP.DELETED', description: 'Group Deleted' },
  resources: [{ type: 'GROUP', id: groupId, name: 'finance-approvers' }],
  result: { status: 'SUCCESS' },
});

describe('group fan-out over 1,000 users', () => {
  const sessionPrefix = uniquePrefix('fan-s');
  const env = {
    QUEUE_PREFIX: `{${uniquePrefix('fan-q')}}`,
    SESSION_PREFIX: sessionPrefix,
    SESSION_TAG_SECRET: 'fanout-tag-secret-0123456789',
    WORKER_CONCURRENCY: '32',
  };
  // The group was deleted a minute ago; every session below was issued an hour before that.
  const deletedAt = Date.now() - 60_000;
  const issuedAt = deletedAt - 3_600_000;
  const members = Array.from({ length: MEMBERS }, (_, i) => `member-${i}`);
  const others = Array.from({ length: OTHERS }, (_, i) => `other-${i}`);
  let q: TestQueue;
  let worker: TestWorker;
  let redis: Redis;
  let store: SessionStore;
  let keys: SessionKeys;
  let memberSessions: CreatedSession[];
  let otherSessions: CreatedSession[];

  beforeAll(async () => {
    q = openQueue(env);
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL);
    store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: env.SESSION_TAG_SECRET });
    keys = new SessionKeys(store);
    memberSessions = await inBatches(members, 100, (userId) =>
      keys.create({ userId, ttlSeconds: 3600, issuedAt, groups: [GROUP, 'everyone'] }),
    );
    // Users outside G: some in other groups, some in none.
    otherSessions = await inBatches(others, 100, (userId) =>
      keys.create({
        userId,
        ttlSeconds: 3600,
        issuedAt,
        groups: Number(userId.split('-')[1]) % 2 ? ['everyone'] : [],
      }),
    );
  });
  afterAll(async () => {
    await worker?.close();
    await q?.close();
    await keys?.delete(redis);
    redis?.disconnect();
  });

  const readable = (sessions: CreatedSession[]) =>
    inBatches(sessions, 200, async (s) => (await store.getSession(s.sessionId)) !== null);

  it('a GROUP.DELETED event revokes every member, and only them, through one job per 500 members', async () => {
    expect(await store.usersInGroup(GROUP)).toHaveLength(MEMBERS);
    const eventId = 'e3000001-0000-4000-8000-000000000001';
    const { enqueued } = await q.ingestPingOne(groupDeleted(eventId, GROUP, deletedAt));
    expect(enqueued).toHaveLength(1);
    await waitForQueuesIdle([q.queue], 30_000);

    expect((await readable(memberSessions)).filter(Boolean)).toHaveLength(0);
    expect((await readable(otherSessions)).every(Boolean)).toBe(true);

    const parentId = commandId('pingone', eventId);
    const parent = await q.queue.getJob(parentId);
    expect(await parent!.getState()).toBe('completed');
    expect(parent!.returnvalue).toEqual({ revoked: 0, fannedOut: MEMBERS });
    const parentCommand = RevocationCommand.parse(parent!.data);
    expect(parentCommand).toMatchObject({ target: { type: 'group', groupId: GROUP }, notBefore: deletedAt });

    const children = (await q.queue.getJobs(['completed'])).filter((j) => j.id !== parentId);
    expect(children).toHaveLength(MEMBERS / FAN_OUT_BATCH);
    const batched = children.flatMap((j) => {
      const target = (j.data as RevocationCommand).target;
      return target.type === 'users' ? target.userIds : [];
    });
    expect(batched.sort()).toEqual([...members].sort());
    for (const child of children) {
      expect(child.id!.startsWith(`${parentId}-b`)).toBe(true);
      // Each child takes effect at the group event's time, not at the time it happened to run.
      expect(child.data).toMatchObject({
        fanOutOf: parentId,
        notBefore: parentCommand.notBefore,
        source: 'pingone',
        eventType: 'GROUP.DELETED',
        eventId,
      });
      // One session per member, each batch revoking its members'.
      expect(child.returnvalue).toMatchObject({ revoked: FAN_OUT_BATCH });
    }
    expect(await q.queue.getJobCountByTypes('failed')).toBe(0);

    const audit = await new AuditLog(q.redis, new QueueKeys(env.QUEUE_PREFIX).audit, 10_000).read({
      limit: MEMBERS + 1,
    });
    expect(audit.filter((a) => a.result === 'fanned_out')).toEqual([
      expect.objectContaining({ commandId: parentId, revoked: MEMBERS }),
    ]);
    // The fan-out is one audit entry with its count, not one per member (which filled the capped stream).
    expect(audit.filter((a) => a.result === 'done')).toHaveLength(0);
  });

  it('a group event replayed after a member logs in again leaves the new session alive', async () => {
    // member-0 logs in again (issued now, well after the event plus the clock-skew allowance).
    const fresh = await keys.create({ userId: members[0]!, ttlSeconds: 3600, groups: [GROUP] });
    expect(await store.usersInGroup(GROUP)).toContain(members[0]);

    // The same event redelivered is suppressed by the producer's dedup...
    const eventId = 'e3000001-0000-4000-8000-000000000001';
    const again = await q.ingestPingOne(groupDeleted(eventId, GROUP, deletedAt));
    expect(again).toMatchObject({ enqueued: [], duplicates: [expect.anything()] });
    // ...and an event of the same instant under another id (a replay the dedup cannot see) runs fully.
    const replayId = 'e3000001-0000-4000-8000-000000000002';
    const replay = await q.ingestPingOne(groupDeleted(replayId, GROUP, deletedAt));
    expect(replay.enqueued).toHaveLength(1);
    await waitForQueuesIdle([q.queue], 30_000);

    const parent = await q.queue.getJob(commandId('pingone', replayId));
    expect(await parent!.getState()).toBe('completed');
    expect(parent!.returnvalue).toMatchObject({ fannedOut: expect.any(Number) });
    const replayed = (await q.queue.getJobs(['completed'])).filter((j) => {
      const command = j.data as RevocationCommand;
      return (
        command.eventId === replayId &&
        command.target.type === 'users' &&
        command.target.userIds.includes(members[0]!)
      );
    });
    expect(replayed).toHaveLength(1);
    // member-0's new session is after the event: the batch holding it revokes nothing of it.
    expect(await store.getSession(fresh.sessionId)).toMatchObject({ userId: members[0] });

    expect(await store.getSession(fresh.sessionId)).toMatchObject({ userId: members[0] });
    expect(await store.getSession(memberSessions[0]!.sessionId)).toBeNull();
    expect((await readable(otherSessions)).every(Boolean)).toBe(true);
    expect(await q.queue.getJobCountByTypes('failed')).toBe(0);
  });

  it('a user command replayed (bypassing dedup) after a new login leaves the new session alive', async () => {
    const userId = members[1]!;
    const fresh = await keys.create({ userId, ttlSeconds: 3600 });
    const old = command('fanout-replay-member-1', { type: 'user', userId }, deletedAt);
    const { enqueued } = await q.enqueue([old], { bypassDedup: true });
    expect(enqueued).toHaveLength(1);
    await waitForQueuesIdle([q.queue], 15_000);

    const replays = (await q.queue.getJobs(['completed'])).filter((j) =>
      String(j.data.id).startsWith(`${old.id}-r`),
    );
    expect(replays.map((j) => j.returnvalue)).toEqual([expect.objectContaining({ revoked: 0 })]);
    expect(await store.getSession(fresh.sessionId)).toMatchObject({ userId });
    expect(await store.getSession(memberSessions[1]!.sessionId)).toBeNull();
  });
});
