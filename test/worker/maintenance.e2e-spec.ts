import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Job, Queue } from 'bullmq';
import { SessionStore } from '#session-store';
import { secretHash } from '../../libs/session-store/src/keys.js';
import { REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { openQueue, type TestQueue } from '../support/revocation-queue.js';
import { type OwnRedis, startOwnRedis } from '../support/session-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';
import type { MemoryReading } from '#metrics';
import { QueueKeys } from '#revocation';

const PERIOD = 1000;
const TAG_SECRET = 'maintenance-tag-secret-0123456789';

/**
 * Two worker instances on the same prefixes. The session Redis is this file's own (the sweep SCANs
 * its whole keyspace, which on the shared Redis may be millions of keys); the queue, where the job
 * schedulers live, is the shared one.
 */
describe('scheduled jobs with two worker instances', () => {
  let redis: OwnRedis;
  let q: TestQueue;
  let maintenance: Queue;
  let store: SessionStore;
  let workers: TestWorker[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    redis = await startOwnRedis('maint');
    env = {
      REDIS_URL: redis.url,
      QUEUE_REDIS_URL: REDIS_URL,
      QUEUE_PREFIX: `{${uniquePrefix('maint-q')}}`,
      SESSION_PREFIX: uniquePrefix('maint-s'),
      SESSION_TAG_SECRET: TAG_SECRET,
      SWEEP_EVERY_MS: String(PERIOD),
      MEMORY_WATCH_EVERY_MS: String(PERIOD),
    };
    store = new SessionStore({ redis: redis.client, prefix: env['SESSION_PREFIX'], tagSecret: TAG_SECRET });
    q = openQueue(env);
    maintenance = new Queue('maintenance', { connection: q.redis, prefix: env['QUEUE_PREFIX'] });

    workers = await Promise.all([startWorker(env), startWorker(env)]);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await maintenance?.close();
    await q?.close();
    await redis?.stop();
  });

  const completed = async (name: string) =>
    (await maintenance.getJobs(['completed'])).filter((j) => j.name === name);

  it('each job scheduler exists once', async () => {
    const schedulers = await maintenance.getJobSchedulers();
    expect(schedulers.map((s) => ({ key: s.key, name: s.name, every: Number(s.every) })).sort(byKey)).toEqual(
      [
        { key: 'memory-watch', name: 'memory-watch', every: PERIOD },
        { key: 'sweep', name: 'sweep', every: PERIOD },
      ],
    );
  });

  it('the sweep runs about once per period, not once per worker', async () => {
    // Runs of a period start: wait until five have completed since both workers were up.
    const since = Date.now();
    await waitFor(
      async () => (await completed('sweep')).filter((j) => j.processedOn! >= since).length >= 5,
      'five sweep runs',
      15_000,
    );
    const until = Date.now();
    const runs = (await completed('sweep'))
      .filter((j) => j.processedOn! >= since && j.processedOn! <= until)
      .sort((a, b) => a.processedOn! - b.processedOn!);
    const window = until - since;
    // One per period over the window (plus the one in flight at each end), where doubled runs would be ~2x.
    expect(runs.length).toBeLessThanOrEqual(Math.floor(window / PERIOD) + 2);
    const gaps = runs.slice(1).map((j, i) => j.processedOn! - runs[i]!.processedOn!);
    expect({ gaps, tooClose: gaps.filter((g) => g < PERIOD / 2) }).toEqual({ gaps, tooClose: [] });
    // Both schedulers still exist once (a second worker's upsert did not add another).
    expect((await maintenance.getJobSchedulers()).length).toBe(2);
    expect(await maintenance.getJobCountByTypes('failed')).toBe(0);
  });

  it('the memory watch runs about once per period too', async () => {
    const runs = (await completed('memory-watch')).sort((a, b) => a.processedOn! - b.processedOn!);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    const gaps = runs.slice(1).map((j, i) => j.processedOn! - runs[i]!.processedOn!);
    expect({ gaps, tooClose: gaps.filter((g) => g < PERIOD / 2) }).toEqual({ gaps, tooClose: [] });
  });

  it('the sweep trims expired entries from user, group and IdP-session indexes', async () => {
    // Index entries that expire soon, beside live ones in the same indexes (so the index keys stay).
    const expiresAt = Date.now() + 2500;
    await Promise.all([
      store.createSession({
        userId: 'mixed-user',
        ttlSeconds: 3600,
        notAfter: expiresAt,
        idpSessionId: 'idp-x',
      }),
      store.createSession({ userId: 'mixed-user', ttlSeconds: 3600, idpSessionId: 'idp-x' }),
      store.createSession({ userId: 'short-user', ttlSeconds: 3600, notAfter: expiresAt, groups: ['grp'] }),
      store.createSession({ userId: 'long-user', ttlSeconds: 3600, groups: ['grp'] }),
    ]);
    const k = store.keys;
    const mixedIndex = k.userIndex(k.userTag('mixed-user'));
    const groupIndex = k.group('grp');
    const idpIndex = k.idpIndex(secretHash('idp-x'));
    const cards = async () =>
      Promise.all([mixedIndex, groupIndex, idpIndex].map((key) => redis.client.zcard(key)));
    expect(await cards()).toEqual([2, 2, 2]);
    await waitFor(
      async () => (await cards()).every((n) => n === 1),
      'a sweep to trim the expired entries',
      10_000,
    );
    const trimmedBy = (await completed('sweep')).filter(
      (j: Job) => j.finishedOn! > expiresAt && (j.returnvalue as { trimmed: number }).trimmed > 0,
    );
    expect(trimmedBy.map((j) => j.returnvalue)).toEqual([expect.objectContaining({ trimmed: 3 })]);
    // What stays: the live entries, and the keys themselves (they follow their latest member).
    expect(await cards()).toEqual([1, 1, 1]);
    expect(await redis.client.zrange(groupIndex, '0', '-1')).toEqual(['long-user']);
  });

  it('records memory readings of both Redis roles; one without maxmemory is never degraded', async () => {
    const raw = await waitFor(
      () => q.redis.get(new QueueKeys(env['QUEUE_PREFIX']!).memory),
      'a memory reading',
      5000,
    );
    const readings = JSON.parse(raw!) as MemoryReading[];
    expect(readings.map((r) => r.role).sort()).toEqual(['queue', 'sessions']);
    for (const r of readings) {
      expect(r).toMatchObject({ maxmemory: 0, degraded: false, oomErrors: 0 });
      expect(r.usedMemory).toBeGreaterThan(0);
    }
    expect(readings.find((r) => r.role === 'queue')!.policy).toBe('noeviction');
    const ttl = await q.redis.pttl(new QueueKeys(env['QUEUE_PREFIX']!).memory);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3 * PERIOD);
  });

  it('with SWEEP_KEYS_PER_RUN, each run walks one slice and the next run goes on from there', async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [await startWorker({ ...env, SWEEP_KEYS_PER_RUN: '500' })];
    const since = Date.now();
    // A keyspace of a few SCAN pages of 500: filler strings, and users with an expiring session.
    const fill = redis.client.pipeline();
    for (let i = 0; i < 1500; i++) fill.set(`${env['SESSION_PREFIX']}:filler:${i}`, '1', 'EX', 600);
    await fill.exec();
    const users = Array.from({ length: 10 }, (_, i) => `slice-user-${i}`);
    await Promise.all(
      users.flatMap((userId) => [
        store.createSession({ userId, ttlSeconds: 3600 }),
        store.createSession({ userId, ttlSeconds: 3600, notAfter: Date.now() + 1500 }),
      ]),
    );
    const indexes = users.map((u) => store.keys.userIndex(store.keys.userTag(u)));
    await waitFor(
      async () => (await Promise.all(indexes.map((key) => redis.client.zcard(key)))).every((n) => n === 1),
      'the sliced sweep to trim every expired entry',
      25_000,
    );
    const runsSince = async () =>
      (await completed('sweep'))
        .filter((j) => j.processedOn! >= since)
        .map((j) => j.returnvalue as { scans: number; next?: unknown });
    // The trimming can be done before the walk is: the shared Redis holds other suites' keys too, so a
    // whole pass may take more slices than this file's keys need. One run ends it, however many.
    await waitFor(
      async () => (await runsSince()).some((r) => r.next === undefined),
      'a run to finish the walk',
      25_000,
    );
    const runs = await runsSince();
    expect(runs.every((r) => r.scans === 1)).toBe(true);
    expect(runs.some((r) => r.next !== undefined)).toBe(true);
    expect(runs.some((r) => r.next === undefined)).toBe(true);
  }, 60_000);
});

const byKey = (a: { key: string }, b: { key: string }) => a.key.localeCompare(b.key);
