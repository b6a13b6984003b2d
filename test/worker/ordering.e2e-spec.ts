import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { AuditLog, QueueKeys, type RevocationCommand } from '#revocation';
import { SessionStore } from '#session-store';
import { command } from '../support/commands.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { openQueue } from '../support/revocation-queue.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker } from '../support/worker.js';

const SKEW = 1000;
const TAG_SECRET = 'ordering-tag-secret-0123456789';
const SEED = 20_261_127;
// Ten minutes ago: every instant below is in the past.
const BASE = Date.now() - 600_000;
const at = (offset: number) => BASE + offset;

interface SessionSpec {
  label: string;
  userId: string;
  issuedAt: number;
  idpSessionId?: string;
}

/** Four users, sessions issued at various instants, some born of IdP sessions (one shared by two users). */
const SESSIONS: SessionSpec[] = [
  ...[0, 20, 40, 60, 80, 100].map((s, k) => ({
    label: `u0@${s}`,
    userId: 'user-0',
    issuedAt: at(s * 1000),
    ...(k % 3 === 1 ? { idpSessionId: 'idp-0-b' } : k % 3 === 2 ? { idpSessionId: 'idp-shared' } : {}),
  })),
  ...[5, 25, 45, 65, 85].map((s, k) => ({
    label: `u1@${s}`,
    userId: 'user-1',
    issuedAt: at(s * 1000),
    ...(k % 2 === 0 ? { idpSessionId: 'idp-1-a' } : { idpSessionId: 'idp-shared' }),
  })),
  ...[0, 10, 12, 100, 120].map((s, k) => ({
    label: `u2@${s}`,
    userId: 'user-2',
    issuedAt: at(s * 1000),
    ...(k < 3 ? {} : { idpSessionId: 'idp-2-a' }),
  })),
  // user-3: exactly at a cutoff (notBefore + skew: refused) and one millisecond after it (kept).
  { label: 'u3@20', userId: 'user-3', issuedAt: at(20_000), idpSessionId: 'idp-3-b' },
  { label: 'u3@56.000', userId: 'user-3', issuedAt: at(55_000 + SKEW) },
  { label: 'u3@56.001', userId: 'user-3', issuedAt: at(55_000 + SKEW + 1) },
  { label: 'u3@90', userId: 'user-3', issuedAt: at(90_000), idpSessionId: 'idp-3-b' },
];

const user = (userId: string) => ({ type: 'user' as const, userId });
const idp = (idpSessionId: string, userId?: string) => ({
  type: 'idp_session' as const,
  idpSessionId,
  ...(userId ? { userId } : {}),
});

/** User revocations with various notBefore (two for one user, one duplicated), and IdP-session ones. */
const COMMANDS: RevocationCommand[] = [
  command('c-user-0-early', user('user-0'), at(30_000)),
  command('c-user-0-late', user('user-0'), at(70_000)),
  command('c-user-1', user('user-1'), at(50_000)),
  command('c-user-2', user('user-2'), at(10_000)),
  command('c-user-2-again', user('user-2'), at(10_000)),
  command('c-user-3', user('user-3'), at(55_000)),
  command('c-idp-0-b', idp('idp-0-b'), at(90_000)),
  command('c-idp-1-a', idp('idp-1-a', 'user-1'), at(45_000)),
  command('c-idp-2-a', idp('idp-2-a', 'user-2'), at(110_000)),
  command('c-idp-shared', idp('idp-shared'), at(62_000)),
  command('c-idp-3-b', idp('idp-3-b', 'user-3'), at(25_000)),
  command('c-idp-ghost', idp('idp-nobody-has', 'user-3'), at(100_000)),
];

/** What the design says: a session is refused when some command covering it took effect at or after its issue. */
function model(commands: RevocationCommand[]): Record<string, boolean> {
  return Object.fromEntries(
    SESSIONS.map((s) => {
      const refused = commands.some(
        (c) =>
          s.issuedAt <= c.notBefore + SKEW &&
          ((c.target.type === 'user' && c.target.userId === s.userId) ||
            (c.target.type === 'idp_session' && c.target.idpSessionId === s.idpSessionId)),
      );
      return [s.label, !refused];
    }),
  );
}

/**
 * On fresh prefixes: creates SESSIONS, has one worker (concurrency 1, so jobs run one by one in queue
 * order) apply `commands` in the given order, and returns which sessions are still readable, with
 * the order the worker actually executed them in (from the audit stream).
 */
async function apply(
  name: string,
  commands: RevocationCommand[],
): Promise<{ readable: Record<string, boolean>; executed: string[] }> {
  const env = {
    QUEUE_PREFIX: `{${uniquePrefix(`ord-q-${name}`)}}`,
    SESSION_PREFIX: uniquePrefix(`ord-s-${name}`),
    SESSION_TAG_SECRET: TAG_SECRET,
    CLOCK_SKEW_MS: String(SKEW),
    WORKER_CONCURRENCY: '1',
  };
  const redis = new Redis(REDIS_URL);
  const keys = new SessionKeys(
    new SessionStore({ redis, prefix: env.SESSION_PREFIX, tagSecret: TAG_SECRET, clockSkewMs: SKEW }),
  );
  const q = openQueue(env);
  const worker = await startWorker(env);
  try {
    const created = await Promise.all(
      SESSIONS.map((s) =>
        keys.create({
          userId: s.userId,
          ttlSeconds: 3600,
          issuedAt: s.issuedAt,
          ...(s.idpSessionId ? { idpSessionId: s.idpSessionId } : {}),
        }),
      ),
    );
    for (const c of commands) {
      if (c.target.type === 'user') keys.user(c.target.userId);
      if (c.target.type === 'idp_session') {
        keys.idpSession(c.target.idpSessionId);
        if (c.target.userId) keys.user(c.target.userId);
      }
    }
    const { enqueued } = await q.enqueue(commands);
    expect(enqueued).toHaveLength(commands.length);
    await waitForQueuesIdle([q.queue], 15_000);
    expect(await q.queue.getJobCountByTypes('failed')).toBe(0);
    const audit = await new AuditLog(q.redis, new QueueKeys(env.QUEUE_PREFIX).audit, 1000).read({
      limit: 100,
    });
    const readable = Object.fromEntries(
      await Promise.all(
        SESSIONS.map(
          async (s, i) => [s.label, (await keys.store.getSession(created[i]!.sessionId)) !== null] as const,
        ),
      ),
    );
    return { readable, executed: audit.map((a) => a.commandId!).reverse() };
  } finally {
    await worker.close();
    await q.close();
    await keys.delete(redis);
    redis.disconnect();
  }
}

describe('commands applied in any order end in the same state (invariant 2)', () => {
  let inOrder: { readable: Record<string, boolean>; executed: string[] };

  beforeAll(async () => {
    inOrder = await apply('in-order', COMMANDS);
  });

  it('in order, the worker ends in the state the model predicts (some sessions refused, some kept)', () => {
    expect(inOrder.executed).toEqual(COMMANDS.map((c) => c.id));
    expect(inOrder.readable).toEqual(model(COMMANDS));
    const kept = Object.values(inOrder.readable).filter(Boolean).length;
    expect(kept).toBeGreaterThan(3);
    expect(kept).toBeLessThan(SESSIONS.length - 3);
  });

  it('reversed and shuffled orders end in the same state as in order', async () => {
    const shuffles = fc.sample(
      fc.shuffledSubarray(COMMANDS, { minLength: COMMANDS.length, maxLength: COMMANDS.length }),
      { numRuns: 4, seed: SEED },
    );
    const orders = [[...COMMANDS].reverse(), ...shuffles];
    const results = await Promise.all(orders.map((order, i) => apply(`perm${i}`, order)));
    results.forEach((result, i) => {
      const order = orders[i]!.map((c) => c.id);
      // The worker really applied them in that order...
      expect(result.executed).toEqual(order);
      // ...and ended where the in-order run did.
      expect({ order, readable: result.readable }).toEqual({ order, readable: inOrder.readable });
    });
  });
});

describe('an event dated in the future', () => {
  it('takes effect when it arrived: sessions until then refused, later logins kept', async () => {
    const env = {
      QUEUE_PREFIX: `{${uniquePrefix('ord-q-future')}}`,
      SESSION_PREFIX: uniquePrefix('ord-s-future'),
      SESSION_TAG_SECRET: TAG_SECRET,
      CLOCK_SKEW_MS: '0',
    };
    const redis = new Redis(REDIS_URL);
    const keys = new SessionKeys(
      new SessionStore({ redis, prefix: env.SESSION_PREFIX, tagSecret: TAG_SECRET, clockSkewMs: 0 }),
    );
    const q = openQueue(env);
    const worker = await startWorker(env);
    try {
      const before = await keys.create({ userId: 'user-future', ttlSeconds: 3600 });
      // A sender whose clock is seventy years ahead of ours.
      const { enqueued } = await q.ingestPingOne({
        id: 'evt-from-2096',
        recordedAt: '2096-01-01T00:00:00.000Z',
        action: { type: 'USER.DELETED' },
        resources: [{ type: 'USER', id: 'user-future' }],
        result: { status: 'SUCCESS' },
      });
      expect(enqueued).toHaveLength(1);
      expect(enqueued[0]!.notBefore).toBe(enqueued[0]!.receivedAt);
      await waitForQueuesIdle([q.queue], 15_000);
      expect(await q.queue.getJobCountByTypes('failed')).toBe(0);
      expect(await keys.store.getSession(before.sessionId)).toBeNull();

      const after = await keys.create({
        userId: 'user-future',
        ttlSeconds: 3600,
        issuedAt: Math.max(Date.now(), enqueued[0]!.receivedAt + 1),
      });
      expect(await keys.store.getSession(after.sessionId)).not.toBeNull();
    } finally {
      await worker.close();
      await q.close();
      await keys.delete(redis);
      redis.disconnect();
    }
  });
});
