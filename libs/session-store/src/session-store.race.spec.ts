import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  deletePrefix,
  startCluster,
  testRedis,
  uniquePrefix,
  type TestCluster,
} from '../../../test/support/redis.js';
import {
  SessionRevokedError,
  SessionStore,
  type CreatedSession,
  type RedisClient,
  type RevokeResult,
} from './index.js';

/**
 * Logins racing a revocation (design invariants 1 and 3): whatever the interleaving, once revokeUser resolves
 * nothing issued before the stamp it returns is readable, a refused login is refused with SessionRevokedError,
 * and nothing issued at or after the stamp is harmed.
 */

const TAG_SECRET = 'race-tag-secret-0123456789abcdef';
const SKEW_MS = 5000;
const TTL_SECONDS = 3600;
/** Creates per round (at least), the connections they are spread over, and concurrent callers per connection. */
const TOTAL = 300;
/** Creates started once every revocation has resolved, so some surely reach Redis after the stamp. */
const TAIL = 30;
/**
 * While a revocation is in flight creates go on, but no further than this: revokeUser's clean-up pages
 * through the whole user index, so a user logging in faster than it pages would keep it from returning.
 */
const CAP = 600;
const CONNECTIONS = 4;
const WORKERS_PER_CONNECTION = 6;

interface Attempt {
  /** The issuedAt asked for, when explicit. */
  requested?: number;
  outcome: CreatedSession | Error;
}

const created = (a: Attempt): CreatedSession | null => (a.outcome instanceof Error ? null : a.outcome);

interface Revocation {
  /** Started once this many creates have settled. */
  after: number;
  run: () => Promise<RevokeResult>;
}

/**
 * Runs creates for one user, from several connections at once, and starts each revocation once `after`
 * creates have settled, so they land among creates in flight on the other connections. Creates go on until
 * TOTAL have started and every revocation has resolved (or CAP have started), then TAIL more start. When a
 * revocation resolves, every create settled by then is checked against the stamp it returned.
 */
async function race(
  stores: SessionStore[],
  userId: string,
  issuedAt: ((i: number) => number) | undefined,
  revocations: Revocation[],
): Promise<{ attempts: Attempt[]; results: RevokeResult[] }> {
  const attempts: Attempt[] = [];
  const pending: Promise<unknown>[] = [];
  const results: Promise<RevokeResult>[] = [];
  let started = 0;
  let unresolved = revocations.length;
  let allSettled!: () => void;
  const revoked = new Promise<void>((resolve) => (allSettled = resolve));
  const countDown = () => {
    if (--unresolved === 0) allSettled();
  };
  let tail = 0;
  const settled = () => {
    for (const [k, r] of revocations.entries()) {
      if (attempts.length !== r.after) continue;
      const result = r.run();
      results[k] = result;
      // Counted down even if it fails, so the workers stop and the failure surfaces.
      void result.then(countDown, countDown);
      pending.push(result.then((res) => expectRevoked(stores[0]!, res.notBefore, [...attempts])));
    }
  };
  const create = async (store: SessionStore) => {
    const i = started++;
    const requested = issuedAt?.(i);
    const outcome = await store
      .createSession({ userId, ttlSeconds: TTL_SECONDS, issuedAt: requested })
      .catch((e: unknown) => e as Error);
    attempts.push({ requested, outcome });
    settled();
  };
  const worker = async (store: SessionStore) => {
    while (started < TOTAL || (unresolved > 0 && started < CAP)) await create(store);
    await revoked;
    while (tail < TAIL) {
      tail++;
      await create(store);
    }
  };
  await Promise.all(
    stores.flatMap((store) => Array.from({ length: WORKERS_PER_CONNECTION }, () => worker(store))),
  );
  expect(results.filter(Boolean)).toHaveLength(revocations.length);
  expect(attempts).toHaveLength(started);
  const resolved = await Promise.all(results);
  await Promise.all(pending);
  return { attempts, results: resolved };
}

/** Every session created before `notBefore` among `attempts` reads as null. */
async function expectRevoked(store: SessionStore, notBefore: number, attempts: Attempt[]): Promise<void> {
  const doomed = attempts.map(created).filter((c) => c !== null && c.issuedAt < notBefore);
  const reads = await Promise.all(doomed.map((c) => store.getSession(c!.sessionId)));
  expect(reads.filter((r) => r !== null)).toEqual([]);
}

/** The state once everything has settled, judged against the final stamp. */
async function expectFinalState(
  store: SessionStore,
  redis: RedisClient,
  userId: string,
  attempts: Attempt[],
  results: RevokeResult[],
  notBefore: number,
): Promise<CreatedSession[]> {
  expect(attempts.length).toBeGreaterThanOrEqual(TOTAL + TAIL);
  // A refused login is refused as revoked, and only if it claimed an instant before the stamp.
  for (const a of attempts) {
    if (!(a.outcome instanceof Error)) continue;
    expect(a.outcome).toBeInstanceOf(SessionRevokedError);
    if (a.requested !== undefined) expect(a.requested).toBeLessThan(notBefore);
  }
  const ok = attempts.map(created).filter((c): c is CreatedSession => c !== null);
  const doomed = ok.filter((c) => c.issuedAt < notBefore);
  const live = ok.filter((c) => c.issuedAt >= notBefore);

  await expectRevoked(store, notBefore, attempts);
  const reads = await Promise.all(live.map((c) => store.getSession(c.sessionId)));
  expect(reads.map((r) => r?.handle ?? null)).toEqual(live.map((c) => c.handle));

  // Deletion is clean-up, but done by the time revokeUser resolves: each doomed record went exactly once.
  expect(results.reduce((n, r) => n + r.revoked, 0)).toBe(doomed.length);
  const tag = store.keys.userTag(userId);
  const left = await Promise.all(doomed.map((c) => redis.exists(store.keys.session(tag, c.handle))));
  expect(left.filter(Boolean)).toHaveLength(0);
  expect((await store.listUserSessions(userId)).map((s) => s.handle).sort()).toEqual(
    live.map((c) => c.handle).sort(),
  );
  return live;
}

function raceSuite(
  name: string,
  connect: () => Promise<{ clients: RedisClient[]; done: () => Promise<void> }>,
) {
  describe(`SessionStore: logins racing a revocation (${name})`, () => {
    const prefix = uniquePrefix(`race-${name}`);
    let clients: RedisClient[];
    let done: () => Promise<void>;
    let stores: SessionStore[];
    /** Revokes through its own connection, in small batches, so clean-up pages while creates land. */
    let revoker: SessionStore;

    beforeAll(async () => {
      ({ clients, done } = await connect());
      stores = clients
        .slice(1)
        .map((redis) => new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: SKEW_MS }));
      revoker = new SessionStore({
        redis: clients[0]!,
        prefix,
        tagSecret: TAG_SECRET,
        clockSkewMs: SKEW_MS,
        batchSize: 16,
      });
    }, 60_000);
    afterAll(async () => {
      if (clients) await deletePrefix(clients[0]!, prefix);
      await done?.();
    });

    it('revokeUser (now) refuses every session created before its stamp and harms none after', async () => {
      for (const [round, after] of [40, 120, 200].entries()) {
        const userId = `now-${round}@example.com`;
        let before = 0;
        let afterRevoke = 0;
        const { attempts, results } = await race(stores, userId, undefined, [
          {
            after,
            run: async () => {
              before = Date.now();
              const r = await revoker.revokeUser(userId);
              afterRevoke = Date.now();
              return r;
            },
          },
        ]);
        const [{ notBefore }] = results as [RevokeResult];
        // "Now" by the Redis clock on this host, plus one.
        expect(notBefore).toBeGreaterThanOrEqual(before + 1);
        expect(notBefore).toBeLessThanOrEqual(afterRevoke + 1);
        await expectFinalState(revoker, clients[0]!, userId, attempts, results, notBefore);
        // The creates that settled before the revocation started were all issued before it.
        const doomed = attempts.filter((a) => (created(a)?.issuedAt ?? Infinity) < notBefore);
        expect(doomed.length).toBeGreaterThanOrEqual(after);
        // At least the TAIL creates reached Redis after the stamp: each was refused or issued at/after it.
        const late = attempts.filter((a) => (created(a)?.issuedAt ?? -Infinity) >= notBefore);
        const refused = attempts.filter((a) => a.outcome instanceof Error);
        expect(late.length + refused.length).toBeGreaterThanOrEqual(TAIL);
      }
    });

    it('a login made once revokeUser (now) has resolved is accepted and readable', async () => {
      const rounds = 200;
      const refused: { round: number; notBefore: number }[] = [];
      for (let round = 0; round < rounds; round++) {
        const userId = `after-${round}@example.com`;
        const store = stores[round % stores.length]!;
        const earlier = await store.createSession({ userId, ttlSeconds: TTL_SECONDS });
        const { notBefore, revoked } = await revoker.revokeUser(userId);
        expect(revoked).toBe(1);
        expect(await store.getSession(earlier.sessionId)).toBeNull();
        const login = await store
          .createSession({ userId, ttlSeconds: TTL_SECONDS })
          .catch((e: unknown) => e as Error);
        if (login instanceof Error) {
          expect(login).toBeInstanceOf(SessionRevokedError);
          refused.push({ round, notBefore });
          continue;
        }
        expect(login.issuedAt).toBeGreaterThanOrEqual(notBefore);
        expect(await revoker.getSession(login.sessionId)).toMatchObject({ handle: login.handle, userId });
      }
      expect({ refused: refused.length, of: rounds, first: refused.slice(0, 3) }).toEqual({
        refused: 0,
        of: rounds,
        first: [],
      });
    });

    // The same promise for the stamps kept outside the user's slot: a login carrying the IdP session or
    // the group, made once the "now" revocation has resolved, is accepted.
    it.each([
      [
        'revokeIdpSession',
        (userId: string) => revoker.revokeIdpSession(`ping-${userId}`),
        (userId: string) => ({ idpSessionId: `ping-${userId}` }),
      ],
      [
        'revokeGroup',
        (userId: string) => revoker.revokeGroup(`group-${userId}`),
        (userId: string) => ({ groups: [`group-${userId}`] }),
      ],
    ] as const)('a login made once %s (now) has resolved is accepted', async (_, revoke, carrying) => {
      const rounds = 200;
      const refused: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const userId = `after-outside-${round}@example.com`;
        const store = stores[round % stores.length]!;
        const { notBefore } = await revoke(userId);
        const login = await store
          .createSession({ userId, ttlSeconds: TTL_SECONDS, ...carrying(userId) })
          .catch((e: unknown) => e as Error);
        if (login instanceof Error) {
          expect(login).toBeInstanceOf(SessionRevokedError);
          refused.push(round);
          continue;
        }
        expect(login.issuedAt).toBeGreaterThanOrEqual(notBefore);
      }
      expect({ refused: refused.length, of: rounds }).toEqual({ refused: 0, of: rounds });
    });

    it('refuses old sessions on read as soon as the stamp is written, before clean-up is done', async () => {
      const userId = 'window@example.com';
      const [store] = stores as [SessionStore];
      const redis = clients[1]!;
      const sessions = await Promise.all(
        Array.from({ length: 2000 }, (_, i) =>
          stores[i % stores.length]!.createSession({ userId, ttlSeconds: TTL_SECONDS }),
        ),
      );
      const tag = store.keys.userTag(userId);
      let finished = false;
      // Clean-up goes 16 at a time (the revoker's batch size), so it takes many round trips.
      const revoking = revoker.revokeUser(userId).finally(() => (finished = true));
      let stamp: string | null = null;
      while (stamp === null && !finished) stamp = await redis.get(store.keys.notBefore(tag));
      // Latest first: clean-up deletes in expiry order, so these are the likeliest to be still there.
      const reads = await Promise.all(
        [...sessions].reverse().map(async (s) => {
          const read = await store.getSession(s.sessionId);
          // Records are only ever deleted: one there after a null read was there during it.
          const stillThere = await redis.exists(store.keys.session(tag, s.handle));
          return { read, stillThere };
        }),
      );
      const { notBefore, revoked } = await revoking;
      expect(Number(stamp)).toBe(notBefore);
      expect(revoked).toBe(sessions.length);
      expect(reads.filter((r) => r.read !== null)).toEqual([]);
      expect(reads.filter((r) => r.stillThere).length).toBeGreaterThan(0);
    });

    it('revokeUser with notBefore, and a replayed older one, against logins with explicit issuedAt', async () => {
      for (const [round, [first, second]] of [
        [60, 150],
        [150, 60],
        [100, 100],
      ].entries()) {
        const userId = `explicit-${round}@example.com`;
        const base = Date.now();
        const notBefore = base - 8000;
        const replayed = base - 9000;
        const stamp = notBefore + SKEW_MS + 1;
        const oldStamp = replayed + SKEW_MS + 1;
        // Spread over [stamp - 1000, stamp + 1000], hitting both sides of the stamp and the stamp itself.
        const issuedAt = (i: number) => stamp - 1000 + ((i * 7919) % 2001);
        const { attempts, results } = await race(stores, userId, issuedAt, [
          { after: first!, run: () => revoker.revokeUser(userId, { notBefore }) },
          { after: second!, run: () => revoker.revokeUser(userId, { notBefore: replayed }) },
        ]);
        const [current, old] = results as [RevokeResult, RevokeResult];
        expect(current.notBefore).toBe(stamp);
        // The replay never lowers the stamp: it reports its own, or the newer one if that came first.
        expect([oldStamp, stamp]).toContain(old.notBefore);
        const live = await expectFinalState(revoker, clients[0]!, userId, attempts, results, stamp);
        expect(live.length).toBeGreaterThan(0);
        expect(attempts.some((a) => (created(a)?.issuedAt ?? Infinity) < stamp)).toBe(true);

        // After both have resolved: the stamp itself is accepted, one ms before it is refused.
        const atStamp = await stores[0]!.createSession({ userId, ttlSeconds: TTL_SECONDS, issuedAt: stamp });
        expect(await revoker.getSession(atStamp.sessionId)).toMatchObject({ issuedAt: stamp, userId });
        await expect(
          stores[1]!.createSession({ userId, ttlSeconds: TTL_SECONDS, issuedAt: stamp - 1 }),
        ).rejects.toBeInstanceOf(SessionRevokedError);
      }
    });
  });
}

raceSuite('standalone', async () => {
  const clients = Array.from({ length: 1 + CONNECTIONS }, () => testRedis());
  return {
    clients,
    done: async () => {
      for (const c of clients) c.disconnect();
    },
  };
});

let cluster: TestCluster | undefined;
raceSuite('cluster', async () => {
  cluster = await startCluster(3);
  const c = cluster;
  return { clients: Array.from({ length: 1 + CONNECTIONS }, () => c.client()), done: () => c.stop() };
});
