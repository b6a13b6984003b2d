import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Cluster, Redis } from 'ioredis';
import {
  deletePrefix,
  startCluster,
  testRedis,
  uniquePrefix,
  waitFor,
  type TestCluster,
} from '../../../test/support/redis.js';
import { SessionRevokedError, SessionStore, tokenRef } from './index.js';

const TAG_SECRET = 'token-cache-tag-secret-0123456789';

/** The names of the commands a client sends, recorded on the real client (nothing is faked). */
function recordCommands(redis: Redis): string[] {
  const sent: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.push(command.name);
    return (send as (...args: unknown[]) => unknown)(command, ...rest);
  }) as typeof redis.sendCommand;
  return sent;
}

/**
 * Garbage tokens, at least `perBucket` of them in every bucket of remembered failures (so each
 * bucket's share of a bound fills up whatever the hashes are).
 */
function garbageFilling(store: SessionStore, perBucket: number, label: string): string[] {
  const buckets = store.keys.tokenFailureBuckets().length;
  const counts = new Array<number>(buckets).fill(0);
  const garbage: string[] = [];
  for (let i = 0; counts.some((c) => c < perBucket); i++) {
    const g = `garbage-${label}-${i}-${Math.random()}`;
    counts[store.keys.tokenFailureBucket(tokenRef(g).hash)]!++;
    garbage.push(g);
  }
  return garbage;
}

async function everyKey(redis: Redis | Cluster, prefix: string): Promise<string[]> {
  const nodes = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
  return (await Promise.all(nodes.map((n) => n.keys(`${prefix}:*`)))).flat();
}

function contract(
  name: string,
  connect: () => Promise<{ redis: Redis | Cluster; done: () => Promise<void> }>,
) {
  describe(`TokenCache (${name})`, () => {
    let redis: Redis | Cluster;
    let done: () => Promise<void>;
    const prefix = uniquePrefix('tokens');
    let store: SessionStore;
    let n = 0;
    const user = () => `token-user-${++n}@example.com`;
    const token = () => `token-${n}-${Math.random().toString(36).slice(2)}-value`;
    const inAMinute = () => Date.now() + 60_000;

    beforeAll(async () => {
      ({ redis, done } = await connect());
      store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    });
    afterAll(async () => {
      await deletePrefix(redis, prefix);
      await done();
    });

    it('reads a record cached before the ready answer was kept (fields of their own), stamps still checked', async () => {
      // What an earlier version wrote: uid, iat, exp and c, no 'j'. Such records live at most
      // maxTtlSeconds after an upgrade; until then they must read as they did.
      const userId = user();
      const ref = tokenRef(token());
      const tag = store.keys.userTag(userId);
      const key = store.keys.token(tag, ref.hash);
      const expiresAt = inAMinute();
      const issuedAt = Date.now() - 1000;
      await redis.hset(
        key,
        'uid',
        userId,
        'iat',
        String(issuedAt),
        'exp',
        String(expiresAt),
        'c',
        '{"scope":"a b"}',
      );
      await redis.pexpireat(key, expiresAt);
      expect(await store.tokens.read(ref, { userId })).toEqual({
        state: 'hit',
        token: { userId, issuedAt, expiresAt, claims: { scope: 'a b' } },
      });
      await store.revokeUser(userId, { notBefore: Date.now() });
      expect((await store.tokens.read(ref, { userId })).state).not.toBe('hit');
    });

    it('reads a cached token back with its claims, and a token never cached as a miss', async () => {
      const userId = user();
      const ref = tokenRef(token());
      await store.tokens.write(ref, { userId, expiresAt: inAMinute(), claims: { scope: 'read', iat: 1 } });
      expect(await store.tokens.read(ref, { userId })).toEqual({
        state: 'hit',
        token: { userId, issuedAt: 1000, expiresAt: expect.any(Number), claims: { scope: 'read', iat: 1 } },
      });
      // Another process (no memory of it, no hint) finds it through the pointer.
      const other = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
      expect(await other.tokens.read(ref)).toMatchObject({ state: 'hit', token: { userId } });
      expect(await store.tokens.read(tokenRef('never-cached'))).toEqual({ state: 'miss' });
      // A wrong hint (a forged subject) is a miss, never another user's entry.
      expect(await other.tokens.read(tokenRef('never-cached'), { userId })).toEqual({ state: 'miss' });
    });

    it('keeps a record no longer than cacheUntil, nor than the token', async () => {
      const userId = user();
      const ref = tokenRef(token());
      const expiresAt = Date.now() + 600_000;
      await store.tokens.write(ref, { userId, expiresAt, cacheUntil: Date.now() + 300 });
      expect(await store.tokens.read(ref, { userId })).toMatchObject({ state: 'hit', token: { expiresAt } });
      await waitFor(
        async () => (await store.tokens.read(ref, { userId })).state === 'miss',
        'the entry to go',
      );
      await expect(store.tokens.write(ref, { userId, expiresAt: Date.now() - 1 })).rejects.toThrow(
        'expiresAt is already past',
      );
    });

    it("makes a user's cached tokens revoked the moment the user is, and caches later ones", async () => {
      const userId = user();
      const refs = [tokenRef(token()), tokenRef(token())];
      for (const ref of refs) await store.tokens.write(ref, { userId, expiresAt: inAMinute() });
      const bystander = tokenRef(token());
      await store.tokens.write(bystander, { userId: user(), expiresAt: inAMinute() });
      const { notBefore, tokens } = await store.revokeUser(userId);
      expect(tokens).toBe(2);
      for (const ref of refs) expect((await store.tokens.read(ref, { userId })).state).toBe('miss');
      expect((await store.tokens.read(bystander)).state).toBe('hit');
      // A token that verifies but was issued before the stamp is refused, cached or not.
      await expect(
        store.tokens.write(tokenRef(token()), { userId, expiresAt: inAMinute(), issuedAt: notBefore - 1 }),
      ).rejects.toBeInstanceOf(SessionRevokedError);
      const later = tokenRef(token());
      await store.tokens.write(later, { userId, expiresAt: inAMinute(), issuedAt: notBefore });
      expect((await store.tokens.read(later, { userId })).state).toBe('hit');
    });

    it('refuses a cached token the moment its stamp is written, before any clean-up', async () => {
      const userId = user();
      const ref = tokenRef(token());
      await store.tokens.write(ref, { userId, expiresAt: inAMinute() });
      // Only the stamp, as a revocation that stopped right after writing it would leave things.
      const tag = store.tokens.tagOf(userId);
      await redis.set(store.keys.notBefore(tag), String(Date.now() + 1), 'PX', 60_000);
      expect(await store.tokens.read(ref, { userId })).toEqual({ state: 'revoked' });
    });

    it('revokes the tokens of one IdP session with it, and keeps the user’s others', async () => {
      const userId = user();
      const ofSession = tokenRef(token());
      const other = tokenRef(token());
      await store.tokens.write(ofSession, { userId, expiresAt: inAMinute(), idpSessionId: 'sid-1' });
      await store.tokens.write(other, { userId, expiresAt: inAMinute(), idpSessionId: 'sid-2' });
      const { notBefore } = await store.revokeIdpSession('sid-1');
      expect((await store.tokens.read(ofSession, { userId })).state).toMatch(/^(miss|revoked)$/);
      expect((await store.tokens.read(other, { userId })).state).toBe('hit');
      await expect(
        store.tokens.write(tokenRef(token()), {
          userId,
          expiresAt: inAMinute(),
          idpSessionId: 'sid-1',
          issuedAt: notBefore - 1,
        }),
      ).rejects.toBeInstanceOf(SessionRevokedError);
    });

    it('lists a token’s user in its groups, so a group revocation finds users who hold only tokens', async () => {
      const userId = user();
      const ref = tokenRef(token());
      await store.tokens.write(ref, { userId, expiresAt: inAMinute(), groups: ['tokens-group'] });
      const { users, notBefore } = await store.revokeGroup('tokens-group');
      expect(users).toEqual([userId]);
      await store.revokeUser(userId, { notBefore });
      expect((await store.tokens.read(ref, { userId })).state).toBe('miss');
    });

    it('remembers failures within the bound, and never the token itself', async () => {
      const bound = 25;
      const buckets = store.keys.tokenFailureBuckets().length;
      // Enough garbage in every bucket to fill each one's share, so exactly the bound is kept.
      const garbage = garbageFilling(store, 13, 'within');
      const kept = await Promise.all(
        garbage.map((g) =>
          store.tokens.rememberFailure(tokenRef(g), 'invalid', { ttlMs: 60_000, maxEntries: bound }),
        ),
      );
      expect(kept.filter(Boolean)).toHaveLength(bound);
      expect(await store.tokens.rememberedFailures()).toBe(bound);
      const failureKeys = (await everyKey(redis, prefix)).filter((k) => /:\{tf\.\d+\}/.test(k));
      // Each reason, and each bucket's set (25 >= 16: every bucket has a share).
      expect(failureKeys).toHaveLength(bound + buckets);
      const remembered = garbage[kept.indexOf(true)]!;
      expect(await store.tokens.read(tokenRef(remembered))).toEqual({ state: 'miss', failed: 'invalid' });
      const keysAndValues = await everyKey(redis, prefix);
      for (const g of garbage) expect(keysAndValues.join('\n')).not.toContain(g);
    });

    it('keeps a bound below the number of buckets too, with its TTL', async () => {
      const small = new SessionStore({ redis, prefix: `${prefix}-small`, tagSecret: TAG_SECRET });
      try {
        const garbage = garbageFilling(small, 3, 'small');
        const kept = await Promise.all(
          garbage.map((g) =>
            small.tokens.rememberFailure(tokenRef(g), 'invalid', { ttlMs: 60_000, maxEntries: 5 }),
          ),
        );
        expect(kept.filter(Boolean)).toHaveLength(5);
        expect(await small.tokens.rememberedFailures()).toBe(5);
        const hash = tokenRef(garbage[kept.indexOf(true)]!).hash;
        for (const key of [
          small.keys.tokenFailure(hash),
          small.keys.tokenFailures(small.keys.tokenFailureBucket(hash)),
        ]) {
          const ttl = await redis.pttl(key);
          expect(ttl).toBeGreaterThan(0);
          expect(ttl).toBeLessThanOrEqual(60_000);
        }
      } finally {
        await deletePrefix(redis, `${prefix}-small`);
      }
    });

    it('spreads remembered failures over slots, on every node of a cluster', async () => {
      const spread = new SessionStore({ redis, prefix: `${prefix}-spread`, tagSecret: TAG_SECRET });
      try {
        // 400 random tokens miss one of 16 buckets once in ~10^10 runs.
        const garbage = Array.from({ length: 400 }, (_, i) => `garbage-spread-${i}-${Math.random()}`);
        await Promise.all(
          garbage.map((g) =>
            spread.tokens.rememberFailure(tokenRef(g), 'invalid', { ttlMs: 60_000, maxEntries: 10_000 }),
          ),
        );
        const nodes = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
        const perNode = await Promise.all(nodes.map((node) => node.keys(`${prefix}-spread:*`)));
        for (const keys of perNode) expect(keys.length).toBeGreaterThan(0);
        const tags = new Set(perNode.flat().map((k) => /\{([^}]*)\}/.exec(k)![1]));
        expect(tags.size).toBeGreaterThan(1);
        expect(tags.size).toBe(spread.keys.tokenFailureBuckets().length);
        expect(await spread.tokens.rememberedFailures()).toBe(400);
      } finally {
        await deletePrefix(redis, `${prefix}-spread`);
      }
    });

    it('finds a token through its pointer when the hint names another user, or the memory is stale', async () => {
      const userId = user();
      const ref = tokenRef(token());
      await store.tokens.write(ref, { userId, expiresAt: inAMinute() });
      // A process that never saw the token, given a hint that is not the token's user.
      const other = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
      expect(await other.tokens.read(ref, { userId: 'someone-else' })).toMatchObject({
        state: 'hit',
        token: { userId },
      });
      // The record moves to another user's slot (its first one deleted, then the token written again
      // elsewhere): this process's memory of the first slot is stale, the rewritten pointer is not.
      const moved = user();
      await store.revokeUser(userId);
      await other.tokens.write(ref, { userId: moved, expiresAt: inAMinute() });
      expect(await store.tokens.read(ref, { userId })).toMatchObject({
        state: 'hit',
        token: { userId: moved },
      });
      // A wrong hint for a token never cached stays a miss, with its failure if remembered.
      expect(await other.tokens.read(tokenRef('never-cached-either'), { userId })).toEqual({ state: 'miss' });
    });

    it('gives one caller at a time the flight of a token, until it releases it', async () => {
      const ref = tokenRef(token());
      const owners = await Promise.all(Array.from({ length: 20 }, () => store.tokens.claimFlight(ref, 5000)));
      const owner = owners.filter((o) => o !== null);
      expect(owner).toHaveLength(1);
      // Only the owner can release it.
      await store.tokens.releaseFlight(ref, 'not-the-owner');
      expect(await store.tokens.claimFlight(ref, 5000)).toBeNull();
      await store.tokens.releaseFlight(ref, owner[0]!);
      expect(await store.tokens.claimFlight(ref, 5000)).toEqual(expect.any(String));
      // A lease ends by itself: a crashed owner does not hold the token forever.
      const short = tokenRef(token());
      expect(await store.tokens.claimFlight(short, 50)).toEqual(expect.any(String));
      await waitFor(async () => (await store.tokens.claimFlight(short, 5000)) !== null, 'the lease to end');
    });
  });
}

contract('single Redis', async () => {
  const redis = testRedis();
  return { redis, done: async () => void (await redis.quit()) };
});

let cluster: TestCluster;
contract('Redis Cluster', async () => {
  cluster = await startCluster(3);
  const redis = cluster.client();
  return {
    redis,
    done: async () => {
      await redis.quit();
      await cluster.stop();
    },
  };
});

describe('TokenCache round trips', () => {
  const prefix = uniquePrefix('tokens-rtt');
  const redis = testRedis();
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('reads a hit in one command when the user is known, two when only the token is', async () => {
    const store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
    const ref = tokenRef('a-token-for-round-trips');
    await store.tokens.write(ref, { userId: 'rtt-user', expiresAt: Date.now() + 60_000 });
    const fresh = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
    const sent = recordCommands(redis);
    expect((await fresh.tokens.read(ref, { userId: 'rtt-user' })).state).toBe('hit');
    expect(sent.splice(0)).toEqual(['evalsha']);
    const another = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
    expect((await another.tokens.read(ref)).state).toBe('hit');
    expect(sent.splice(0)).toEqual(['get', 'get', 'evalsha']);
    // Then it remembers where the token lives.
    expect((await another.tokens.read(ref)).state).toBe('hit');
    expect(sent.splice(0)).toEqual(['evalsha']);
    // A hint of another user costs the pointer's round trip once, then the memory serves.
    const misled = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
    expect((await misled.tokens.read(ref, { userId: 'not-rtt-user' })).state).toBe('hit');
    expect(sent.splice(0)).toEqual(['evalsha', 'get', 'get', 'evalsha']);
    expect((await misled.tokens.read(ref, { userId: 'not-rtt-user' })).state).toBe('hit');
    expect(sent.splice(0)).toEqual(['evalsha']);
  });

  it('looks a remembered failure up in one round trip, and a hinted miss in two', async () => {
    const store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
    const ref = tokenRef('a-failed-token-for-round-trips');
    await store.tokens.rememberFailure(ref, 'invalid', { ttlMs: 60_000, maxEntries: 10_000 });
    const sent = recordCommands(redis);
    expect(await store.tokens.read(ref)).toEqual({ state: 'miss', failed: 'invalid' });
    // The pointer and the failure, sent together.
    expect(sent.splice(0)).toEqual(['get', 'get']);
    expect(await store.tokens.read(ref, { userId: 'rtt-user' })).toEqual({
      state: 'miss',
      failed: 'invalid',
    });
    expect(sent.splice(0)).toEqual(['evalsha', 'get', 'get']);
  });
});
