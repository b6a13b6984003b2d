import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../../test/support/redis.js';
import { AuditLog, type AuditRecord } from './audit-log.js';
import { QueueKeys } from './queue-keys.js';

/** Reading the audit trail: bounded walks and their cursor, on the real test Redis. */
describe('AuditLog', () => {
  const prefix = `{${uniquePrefix('audit-log')}}`;
  const redis = new Redis(REDIS_URL);
  const log = new AuditLog(redis, new QueueKeys(prefix).audit, 1000);
  const record = (n: number, userId: string): AuditRecord => ({
    commandId: `c-${n}`,
    source: 'pingone',
    eventType: 'USER.DELETED',
    target: { type: 'user', userId },
    result: 'done',
    receivedAt: n,
    doneAt: n,
  });
  const commands = (entries: { commandId?: string }[]) => entries.map((e) => e.commandId);

  beforeAll(async () => {
    // c-0 .. c-29, newest last: every tenth names u-tenth, one names a user whose id contains another's.
    for (let n = 0; n < 30; n++)
      await log.append(record(n, n % 10 === 0 ? 'u-tenth' : n === 15 ? 'u-tenth-not' : `u-${n}`));
  });
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('without a user: one page of limit, newest first, and the cursor resumes past it', async () => {
    const first = await log.page({ limit: 4 });
    expect(commands(first.entries)).toEqual(['c-29', 'c-28', 'c-27', 'c-26']);
    expect(first.next).toBe(first.entries[3]!.id);
    const second = await log.page({ limit: 4, before: first.next! });
    expect(commands(second.entries)).toEqual(['c-25', 'c-24', 'c-23', 'c-22']);
    const rest = await log.page({ limit: 100, before: second.next! });
    expect(rest.entries).toHaveLength(22);
    expect(rest.next).toBeUndefined();
  });

  it('with a user: stops after the scan budget with a cursor, exact matches only, and ends at the oldest', async () => {
    const seen: string[] = [];
    const pages: number[] = [];
    let before: string | undefined;
    do {
      const page = await log.page({
        limit: 10,
        userId: 'u-tenth',
        scanBudget: 7,
        ...(before ? { before } : {}),
      });
      seen.push(...commands(page.entries).map(String));
      pages.push(page.entries.length);
      before = page.next;
    } while (before);
    expect(seen).toEqual(['c-20', 'c-10', 'c-0']);
    // 30 entries at 7 a call: 5 calls, the last reaching the oldest entry.
    expect(pages).toEqual([0, 1, 1, 0, 1]);
  });

  it('with a user: stops at limit matches, with the cursor on the last one', async () => {
    const page = await log.page({ limit: 2, userId: 'u-tenth' });
    expect(commands(page.entries)).toEqual(['c-20', 'c-10']);
    expect(page.next).toBe(page.entries[1]!.id);
    expect(commands(await log.read({ limit: 5, userId: 'u-tenth', before: page.next! }))).toEqual(['c-0']);
  });

  it('takes any valid stream id as the cursor, refuses others, and nothing is older than 0-0', async () => {
    expect(await log.page({ limit: 5, before: '0-0' })).toEqual({ entries: [] });
    expect(await log.page({ limit: 5, userId: 'u-tenth', before: '1-0' })).toEqual({ entries: [] });
    const newest = await log.page({ limit: 1, before: '18446744073709551615-18446744073709551615' });
    expect(commands(newest.entries)).toEqual(['c-29']);
    for (const before of ['abc', '1', '1-2-3', '18446744073709551616-0'])
      await expect(log.page({ limit: 1, before })).rejects.toThrow(RangeError);
  });
});
