import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../../test/support/redis.js';
import { commandId } from './command-id.js';
import { QueueKeys } from './queue-keys.js';
import type { RevocationCommand } from './revocation-command.js';
import { ENQUEUE_BATCH, type ProducerOptions, RevocationProducer } from './revocation-producer.js';

const WINDOW_MS = 60_000;
const JOB_OPTIONS = { attempts: 3, removeOnComplete: { count: 10 }, removeOnFail: false };

const command = (eventId: string): RevocationCommand => ({
  id: commandId('pingone', eventId),
  target: { type: 'user', userId: `u-${eventId}` },
  source: 'pingone',
  eventType: 'USER.DELETED',
  eventId,
  notBefore: 1_700_000_000_000,
  receivedAt: 1_700_000_000_500,
});

/**
 * The producer on the real test Redis, in a prefix of its own, with the queue sharing the dedup
 * client as the gateway's does: each command is one script (check, job, mark); `fused: false` takes
 * the three steps (check, jobs, marks), which must behave the same.
 */
describe.each([
  { path: 'one script per command', fused: true },
  { path: 'three steps', fused: false },
])('RevocationProducer ($path)', ({ fused }) => {
  const prefix = `{${uniquePrefix(`producer-${fused ? 'fused' : 'steps'}`)}}`;
  const keys = new QueueKeys(prefix);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const queue = new Queue('revocations', { connection: redis, prefix });
  const options: ProducerOptions = { dedupWindowMs: WINDOW_MS, keys, jobOptions: JOB_OPTIONS, fused };
  const producer = new RevocationProducer(queue, redis, options);
  const jobIds = async () => (await queue.getJobs(['wait'])).map((j) => j.id).sort();

  beforeAll(() => queue.waitUntilReady());
  beforeEach(() => deletePrefix(redis, prefix));
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await queue.close();
    redis.disconnect();
  });

  it('enqueues a command once, as a job with its data and options, and marks it for the window', async () => {
    const c = command('e-1');
    expect(await producer.enqueue([c])).toEqual({ enqueued: [c], duplicates: [] });
    const [job, ...others] = await queue.getJobs(['wait']);
    expect(others).toEqual([]);
    expect(job).toMatchObject({ id: c.id, name: 'revoke', data: c, opts: { attempts: 3 } });
    expect(await redis.get(keys.dedup(c.id))).toBe('1');
    const ttl = await redis.pttl(keys.dedup(c.id));
    expect(ttl).toBeGreaterThan(WINDOW_MS - 5_000);
    expect(ttl).toBeLessThanOrEqual(WINDOW_MS);

    expect(await producer.enqueue([c])).toEqual({ enqueued: [], duplicates: [c] });
    expect(await jobIds()).toEqual([c.id]);
  });

  it('keeps a redelivery out after its job is gone', async () => {
    const c = command('e-gone');
    await producer.enqueue([c]);
    await (await queue.getJob(c.id))!.remove();
    expect(await jobIds()).toEqual([]);
    expect(await producer.enqueue([c])).toEqual({ enqueued: [], duplicates: [c] });
    expect(await jobIds()).toEqual([]);
  });

  it('tells the seen from the new in one batch, in order', async () => {
    const [a, b, c, d] = ['e-a', 'e-b', 'e-c', 'e-d'].map(command) as [
      RevocationCommand,
      RevocationCommand,
      RevocationCommand,
      RevocationCommand,
    ];
    await producer.enqueue([b]);
    expect(await producer.enqueue([a, b, c, d])).toEqual({ enqueued: [a, c, d], duplicates: [b] });
    expect(await jobIds()).toEqual([a, b, c, d].map((x) => x.id).sort());
    for (const x of [a, b, c, d]) expect(await redis.get(keys.dedup(x.id))).toBe('1');
  });

  it('enqueues an event delivered twice at once exactly once', async () => {
    const c = command('e-race');
    const results = await Promise.all([producer.enqueue([c]), producer.enqueue([c])]);
    expect(results.map((r) => r.enqueued.length).sort()).toEqual([0, 1]);
    expect(results.map((r) => r.duplicates.length).sort()).toEqual([0, 1]);
    expect(await jobIds()).toEqual([c.id]);
  });

  it('enqueues each event of a batch delivered twice at once exactly once', async () => {
    const batch = ['e-rb-1', 'e-rb-2', 'e-rb-3'].map(command);
    const results = await Promise.all([producer.enqueue(batch), producer.enqueue(batch)]);
    for (const c of batch) {
      const enqueued = results.filter((r) => r.enqueued.includes(c)).length;
      const duplicate = results.filter((r) => r.duplicates.includes(c)).length;
      expect([enqueued, duplicate]).toEqual([1, 1]);
    }
    expect(await jobIds()).toEqual(batch.map((c) => c.id).sort());
    for (const c of batch) expect(await redis.get(keys.dedup(c.id))).toBe('1');
  });

  it('marks, and then skips, a batch larger than one round', async () => {
    const many = Array.from({ length: ENQUEUE_BATCH + 3 }, (_, i) => command(`e-many-${i}`));
    expect((await producer.enqueue(many)).enqueued).toHaveLength(many.length);
    expect(await queue.getWaitingCount()).toBe(many.length);
    const again = await producer.enqueue(many);
    expect(again).toEqual({ enqueued: [], duplicates: many });
    expect(await queue.getWaitingCount()).toBe(many.length);
  });

  it('replays a command under a new id even when it is marked, and marks it again', async () => {
    const c = command('e-replay');
    await producer.enqueue([c]);
    await redis.pexpire(keys.dedup(c.id), 1_000);
    const replayed = await producer.enqueue([c], { bypassDedup: true });
    expect(replayed).toEqual({ enqueued: [c], duplicates: [] });
    const ids = await jobIds();
    expect(ids).toHaveLength(2);
    const replayId = ids.find((id) => id !== c.id)!;
    expect(replayId).toMatch(new RegExp(`^${c.id}-r[0-9a-z]+$`));
    expect((await queue.getJob(replayId))!.data).toEqual({ ...c, id: replayId });
    expect(await redis.pttl(keys.dedup(c.id))).toBeGreaterThan(WINDOW_MS - 5_000);
  });

  it('fails, and marks nothing, when BullMQ refuses the job', async () => {
    // A parent that does not exist: BullMQ's add answers its own error (-5) and stores nothing.
    const refusing = new RevocationProducer(queue, redis, {
      ...options,
      jobOptions: { ...JOB_OPTIONS, parent: { id: 'missing', queue: `${prefix}:nowhere` } },
    });
    const c = command('e-refused');
    await expect(refusing.enqueue([c])).rejects.toThrow(/parent/i);
    // BullMQ's addBulk (the three steps' batch) passes such codes on as job ids instead of failing;
    // one script per command gives them to BullMQ's own check, batch or not.
    if (fused) await expect(refusing.enqueue([c, command('e-refused-2')])).rejects.toThrow(/parent/i);
    expect(await redis.exists(keys.dedup(c.id))).toBe(0);
    expect(await jobIds()).toEqual([]);
    // The sender's retry, once the job can be added, enqueues it.
    expect(await producer.enqueue([c])).toEqual({ enqueued: [c], duplicates: [] });
  });

  it(`sends ${fused ? 'one command per event' : 'a check, the adds and one write of the marks per delivery'}`, async () => {
    const monitor = await redis.monitor();
    const seen: string[] = [];
    // What the producer sent (not what scripts ran: their commands have the source 'lua').
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((a) => typeof a === 'string' && a.startsWith(prefix)))
        seen.push(args[0]!.toLowerCase().replace(/^evalsha$/, 'eval'));
    });
    await producer.enqueue([command('e-count-1')]);
    await producer.enqueue([command('e-count-2')]);
    // A batch: its check, BullMQ's add for each job, and one script for all its marks.
    await producer.enqueue(['e-count-3', 'e-count-4', 'e-count-5'].map(command));
    await redis.ping();
    await new Promise((resolve) => setTimeout(resolve, 50));
    monitor.disconnect();
    expect(seen).toEqual(
      fused
        ? ['eval', 'eval', 'eval', 'eval', 'eval']
        : ['mget', 'eval', 'set', 'mget', 'eval', 'set', 'mget', 'eval', 'eval', 'eval', 'eval'],
    );
  });
});
