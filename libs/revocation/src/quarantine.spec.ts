import { afterAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../../test/support/redis.js';
import { Quarantine } from './quarantine.js';
import { QueueKeys } from './queue-keys.js';

/** The quarantine's bounds, on the real test Redis, in a prefix of its own. */
describe('Quarantine', () => {
  const prefix = `{${uniquePrefix('quarantine')}}`;
  const keys = new QueueKeys(prefix);
  const redis = new Redis(REDIS_URL);
  const service = (maxEntries: number, maxBytes: number) =>
    new Quarantine(redis, keys, { maxEntries, maxBytes });
  const entry = (n: number, size: number) => ({
    source: 'pingone',
    reason: `bad ${n}`,
    eventId: `e-${n}`,
    raw: String(n).padEnd(size, '.'),
  });
  const reasons = async (q: Quarantine) => (await q.list(100)).map((e) => e.reason).reverse();

  beforeEach(() => deletePrefix(redis, prefix));
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('keeps exactly the newest QUARANTINE_MAX_ENTRIES entries', async () => {
    const q = service(5, 1_000_000);
    for (let n = 1; n <= 8; n++) await q.add([entry(n, 10)], Date.now());
    expect(await reasons(q)).toEqual(['bad 4', 'bad 5', 'bad 6', 'bad 7', 'bad 8']);
    expect(await q.bytes()).toBe(50);
  });

  it('keeps at most QUARANTINE_MAX_BYTES of raw text, dropping the oldest first', async () => {
    const q = service(1000, 1000);
    for (let n = 1; n <= 5; n++) await q.add([entry(n, 300)], Date.now());
    expect(await reasons(q)).toEqual(['bad 3', 'bad 4', 'bad 5']);
    expect(await q.bytes()).toBe(900);
    // Multi-byte text counts in bytes, as Redis stores it.
    await q.add([{ ...entry(6, 0), raw: 'é'.repeat(300) }], Date.now());
    expect(await reasons(q)).toEqual(['bad 5', 'bad 6']);
    expect(await q.bytes()).toBe(900);
  });

  it('keeps the newest entry even when it alone is over the budget', async () => {
    const q = service(1000, 1000);
    await q.add([entry(1, 100)], Date.now());
    await q.add([entry(2, 5000)], Date.now());
    const [only] = await q.list(10);
    expect(only).toMatchObject({ reason: 'bad 2', eventId: 'e-2', source: 'pingone' });
    expect(only!.raw).toHaveLength(5000);
    expect(await q.bytes()).toBe(5000);
  });

  it('corrects a count that drifted once it trims down to the newest entry', async () => {
    const q = service(1000, 1000);
    for (let n = 1; n <= 2; n++) await q.add([entry(n, 100)], Date.now());
    // Entries deleted by hand (or kept from before the count) leave it wrong.
    await redis.set(keys.quarantineBytes, 999_999);
    await q.add([entry(3, 100)], Date.now());
    expect(await reasons(q)).toEqual(['bad 3']);
    expect(await q.bytes()).toBe(100);
    await q.add([entry(4, 100)], Date.now());
    expect(await reasons(q)).toEqual(['bad 3', 'bad 4']);
    expect(await q.bytes()).toBe(200);
  });

  it('gives back the bytes of a removed entry, and counts afresh once the stream is gone', async () => {
    const q = service(1000, 1000);
    for (let n = 1; n <= 3; n++) await q.add([entry(n, 300)], Date.now());
    const [newest] = await q.list(1);
    await q.remove(newest!.id);
    await q.remove(newest!.id);
    expect(await q.bytes()).toBe(600);
    expect(await q.get(newest!.id)).toBeNull();

    // Someone deletes the stream by hand: its count must not hold the next entries back.
    await redis.del(keys.quarantine);
    for (let n = 4; n <= 6; n++) await q.add([entry(n, 300)], Date.now());
    expect(await reasons(q)).toEqual(['bad 4', 'bad 5', 'bad 6']);
    expect(await q.bytes()).toBe(900);
  });
});
