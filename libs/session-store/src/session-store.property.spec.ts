import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { deletePrefix, testRedis, uniquePrefix } from '../../../test/support/redis.js';
import { SessionRevokedError, SessionStore } from './index.js';

/**
 * Model-based property test of the per-user not-before stamp (design invariants 1 and 2): random sequences
 * of creates, reads, logouts and revocations (including replayed old ones) over two users, each answer
 * compared with a small in-memory model of the documented rules.
 */

const TAG_SECRET = 'property-tag-secret-0123456789';
const USERS = ['alice@example.com', 'bob@example.com'] as const;
/** Long enough that nothing expires during a run. */
const TTL_SECONDS = 24 * 3600;

/**
 * Instants are offsets (ms) from a base taken at the start of each run, all in the recent past. They sit on
 * a one-second grid with a ±1 ms jitter, so issuedAt values often land exactly on (or next to) a stamp
 * `notBefore + clockSkewMs + 1` and the boundaries get exercised.
 */
const pastOffset = fc
  .tuple(fc.integer({ min: -40, max: -1 }), fc.integer({ min: -1, max: 1 }))
  .map(([seconds, jitter]) => seconds * 1000 + jitter);
const userIndex = fc.integer({ min: 0, max: USERS.length - 1 });

/** -1, 0 or +1 ms around a boundary. */
const nudge = fc.integer({ min: -1, max: 1 });

type Op =
  | { kind: 'create'; user: number; at: number }
  | { kind: 'createAtStamp'; user: number; delta: number; at: number }
  | { kind: 'get'; session: number }
  | { kind: 'destroy'; session: number }
  | { kind: 'revoke'; user: number; at: number }
  | { kind: 'revokeAtSession'; session: number; delta: number }
  | { kind: 'revokeNow'; user: number }
  | { kind: 'list'; user: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('create' as const), user: userIndex, at: pastOffset }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('createAtStamp' as const),
      user: userIndex,
      delta: nudge,
      at: pastOffset,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), session: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('destroy' as const), session: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('revoke' as const), user: userIndex, at: pastOffset }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('revokeAtSession' as const), session: fc.nat(), delta: nudge }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('revokeNow' as const), user: userIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('list' as const), user: userIndex }) },
);

interface ModelSession {
  sessionId: string;
  handle: string;
  user: number;
  issuedAt: number;
  /** The record exists in Redis: created, not destroyed, not deleted by a revocation's clean-up. */
  exists: boolean;
}

/** The documented rules, nothing more. */
class Model {
  readonly stamp: number[] = USERS.map(() => 0);
  readonly sessions: ModelSession[] = [];

  constructor(readonly clockSkewMs: number) {}

  /** createSession is refused when issuedAt < the user's current stamp. */
  refuses(user: number, issuedAt: number): boolean {
    return issuedAt < this.stamp[user]!;
  }

  /** getSession returns a session iff it exists (nothing expires here) and issuedAt >= its user's stamp. */
  readable(s: ModelSession): boolean {
    return s.exists && s.issuedAt >= this.stamp[s.user]!;
  }

  /** The stamp only moves forward; with a notBefore it becomes max(current, notBefore + skew + 1). */
  stampFor(user: number, notBefore: number): number {
    return Math.max(this.stamp[user]!, notBefore + this.clockSkewMs + 1);
  }

  /** Raises the stamp; the revocation's clean-up deletes what it now refuses. Returns how many. */
  revoke(user: number, notBefore: number): number {
    this.stamp[user] = notBefore;
    const doomed = this.sessions.filter((s) => s.exists && s.user === user && s.issuedAt < notBefore);
    for (const s of doomed) s.exists = false;
    return doomed.length;
  }
}

const outcome = <T>(p: Promise<T>): Promise<T | Error> => p.catch((e: unknown) => e as Error);

describe('SessionStore against a model of the not-before rules', () => {
  let redis: Redis;
  let runs = 0;

  beforeAll(() => {
    redis = testRedis();
  });
  afterAll(() => {
    redis.disconnect();
  });

  async function check(ops: Op[], clockSkewMs: number): Promise<void> {
    const prefix = uniquePrefix(`prop${clockSkewMs}-${++runs}`);
    const store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, clockSkewMs });
    const model = new Model(clockSkewMs);
    const base = Date.now();
    const create = async (user: number, issuedAt: number) => {
      const result = await outcome(
        store.createSession({ userId: USERS[user]!, ttlSeconds: TTL_SECONDS, issuedAt }),
      );
      if (model.refuses(user, issuedAt)) {
        expect(result).toBeInstanceOf(SessionRevokedError);
        return;
      }
      if (result instanceof Error) throw result;
      expect(result.issuedAt).toBe(issuedAt);
      model.sessions.push({
        sessionId: result.sessionId,
        handle: result.handle,
        user,
        issuedAt,
        exists: true,
      });
    };
    const revoke = async (user: number, notBefore: number) => {
      const expected = model.stampFor(user, notBefore);
      const result = await store.revokeUser(USERS[user]!, { notBefore });
      const revoked = model.revoke(user, expected);
      expect(result).toEqual({ revoked, tokens: 0, notBefore: expected });
    };
    try {
      for (const step of ops) {
        switch (step.kind) {
          case 'create':
            await create(step.user, base + step.at);
            break;
          case 'createAtStamp': {
            // Right at the user's stamp (when it is in the past window), else like a plain create.
            const stamp = model.stamp[step.user]!;
            await create(step.user, stamp > 0 && stamp < base ? stamp + step.delta : base + step.at);
            break;
          }
          case 'get': {
            const s = model.sessions[step.session % Math.max(1, model.sessions.length)];
            if (!s) break;
            const got = await store.getSession(s.sessionId);
            if (model.readable(s)) {
              expect(got).toMatchObject({ userId: USERS[s.user], handle: s.handle, issuedAt: s.issuedAt });
            } else {
              expect(got).toBeNull();
            }
            break;
          }
          case 'destroy': {
            const s = model.sessions[step.session % Math.max(1, model.sessions.length)];
            if (!s) break;
            const expected = s.exists;
            s.exists = false;
            expect(await store.destroySession(s.sessionId)).toBe(expected);
            break;
          }
          case 'revoke':
            await revoke(step.user, base + step.at);
            break;
          case 'revokeAtSession': {
            // The stamp notBefore + skew + 1 lands on an existing session's issuedAt (delta -1: it stays),
            // or one or two ms past it (delta 0: "issued at notBefore + skew" is revoked).
            const s = model.sessions[step.session % Math.max(1, model.sessions.length)];
            if (!s) break;
            await revoke(s.user, s.issuedAt + step.delta - model.clockSkewMs);
            break;
          }
          case 'revokeNow': {
            // "Now" is the Redis clock (same host): somewhere in [before, after] when the script ran.
            const current = model.stamp[step.user]!;
            const before = Date.now();
            const result = await store.revokeUser(USERS[step.user]!);
            const after = Date.now();
            expect(result.notBefore).toBeGreaterThanOrEqual(Math.max(current, before + 1));
            expect(result.notBefore).toBeLessThanOrEqual(Math.max(current, after + 1));
            // Every session in the window is older than now, so all of this user's go.
            const revoked = model.revoke(step.user, result.notBefore);
            expect(result).toEqual({ revoked, tokens: 0, notBefore: result.notBefore });
            break;
          }
          case 'list': {
            const listed = await store.listUserSessions(USERS[step.user]!);
            const expected = model.sessions.filter((s) => s.user === step.user && model.readable(s));
            expect(listed.map((s) => `${s.handle}@${s.issuedAt}`).sort()).toEqual(
              expected.map((s) => `${s.handle}@${s.issuedAt}`).sort(),
            );
            break;
          }
        }
      }
      // Whatever happened, every session the model knows reads as the model says.
      for (const s of model.sessions) {
        expect((await store.getSession(s.sessionId)) !== null).toBe(model.readable(s));
      }
    } finally {
      await deletePrefix(redis, prefix);
    }
  }

  /** Older revocation replayed after a newer one, then a login claiming an instant between the two. */
  const replayExample: Op[] = [
    { kind: 'create', user: 0, at: -30_000 },
    { kind: 'create', user: 0, at: -10_000 },
    { kind: 'create', user: 1, at: -30_000 },
    { kind: 'revoke', user: 0, at: -20_000 },
    { kind: 'revoke', user: 0, at: -35_000 },
    { kind: 'create', user: 0, at: -25_000 },
    { kind: 'get', session: 0 },
    { kind: 'get', session: 1 },
    { kind: 'get', session: 2 },
    { kind: 'destroy', session: 0 },
    { kind: 'revokeNow', user: 0 },
    { kind: 'revoke', user: 0, at: -1_000 },
    { kind: 'create', user: 0, at: -1_000 },
    { kind: 'list', user: 0 },
    { kind: 'list', user: 1 },
  ];

  for (const clockSkewMs of [0, 5000]) {
    it(`matches the model with clockSkewMs = ${clockSkewMs}`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => check(ops, clockSkewMs)),
        { numRuns: 150, examples: [[replayExample]] },
      );
    });
  }
});
