import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { type RedisClient, SESSION_REDIS } from '#redis';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import {
  deletePrefix,
  freePorts,
  REDIS_URL,
  startRedisServer,
  uniquePrefix,
  waitFor,
} from '../support/redis.js';

// REVOKE_ON_RECEIPT: the gateway puts a user revocation in force (the user's not-before stamp) as it
// queues the command, so the webhook's answer finds the session refused already. These gateways run no
// worker: nothing else could have revoked anything.

type Json = Record<string, unknown>;

const SECRET = 'receipt-webhook-secret';
const TAG_SECRET = 'receipt-tag-secret-0123456789';
const ENV_ID = '3f1c2a7e-5b8d-4e0a-9c61-2d7f4b8e1a90';

/** A PingOne USER.LOCKED delivery for `userId`, recorded now. */
const userLocked = (userId: string) => [
  {
    id: randomUUID(),
    recordedAt: new Date().toISOString(),
    action: { type: 'USER.LOCKED' },
    resources: [{ type: 'USER', id: userId, environment: { id: ENV_ID } }],
    result: { status: 'SUCCESS' },
  },
];

const deliver = (gw: TestGateway, userId: string, body = JSON.stringify(userLocked(userId))) =>
  request(gw.app.getHttpServer())
    .post('/webhooks/pingone')
    .set({ Authorization: `Bearer ${SECRET}`, 'Content-Type': 'application/json' })
    .send(body);

/** `session_revoker_receipt_stamps_total{outcome}`, as /metrics reports it. */
async function stamps(gw: TestGateway, outcome: string): Promise<number> {
  const text = (await request(gw.app.getHttpServer()).get('/metrics').expect(200)).text;
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`session_revoker_receipt_stamps_total{outcome="${outcome}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('REVOKE_ON_RECEIPT: a user revocation in force when the webhook is answered', () => {
  const sessionPrefix = uniquePrefix('receipt');
  let redis: Redis;
  let store: SessionStore;
  let n = 0;
  const user = () => `receipt-user-${++n}-${randomUUID()}`;
  const gateways: TestGateway[] = [];
  const gateway = async (env: Record<string, string> = {}) => {
    const gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('receipt-q')}}`,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: SECRET,
      PINGONE_ENVIRONMENT_IDS: ENV_ID,
      ENQUEUE_TIMEOUT_MS: '15000',
      // Stamps at the event's own instant, so a login a second later is after it.
      CLOCK_SKEW_MS: '0',
      ...env,
    });
    gateways.push(gw);
    return gw;
  };

  beforeAll(() => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // The worker's skew, as the gateway's below.
    store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET, clockSkewMs: 0 });
  });
  afterAll(async () => {
    for (const gw of gateways) await gw.close();
    await deletePrefix(redis, sessionPrefix);
    redis.disconnect();
  });

  it('refuses the user’s sessions by the time the delivery is answered; the job still does the rest', async () => {
    const gw = await gateway();
    const alice = user();
    const bob = user();
    const a = await store.createSession({ userId: alice, ttlSeconds: 600 });
    const b = await store.createSession({ userId: bob, ttlSeconds: 600 });

    const body = JSON.stringify(userLocked(alice));
    expect((await deliver(gw, alice, body)).status).toBe(200);
    expect(await store.getSession(a.sessionId)).toBeNull();
    expect(await store.getSession(b.sessionId)).not.toBeNull();
    expect(await stamps(gw, 'in_force')).toBe(1);
    // The command is queued as before, for the worker: the record is still there for it to delete.
    const commands = await gw.commands();
    expect(commands.map((c) => c.target)).toEqual([{ type: 'user', userId: alice }]);
    const tag = store.keys.userTag(alice);
    expect(await redis.exists(store.keys.session(tag, a.handle))).toBe(1);
    // The worker's revokeUser of the command's instant finds the stamp in place and deletes it.
    expect(await store.revokeUser(alice, { notBefore: commands[0]!.notBefore })).toMatchObject({
      revoked: 1,
    });
    expect(await redis.exists(store.keys.session(tag, a.handle))).toBe(0);

    // A login after the event is not refused, and the same delivery again changes nothing.
    const later = await store.createSession({ userId: alice, ttlSeconds: 600 });
    expect((await deliver(gw, alice, body)).status).toBe(200);
    expect(await store.getSession(later.sessionId)).not.toBeNull();
    expect(await stamps(gw, 'in_force')).toBe(2);
  });

  it('stamps every user of a many-event delivery, and only the users', async () => {
    const gw = await gateway();
    const users = Array.from({ length: 50 }, user);
    const sessions = await Promise.all(
      users.map((userId) => store.createSession({ userId, ttlSeconds: 600 })),
    );
    // And one IdP session's logout: the worker's alone (its users are found through its index).
    const mixedFixture = (
      JSON.parse(readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8')) as Json[]
    ).filter((e) => (e['action'] as Json)['type'] === 'SESSION.DELETED');
    const body = JSON.stringify([...users.flatMap((userId) => userLocked(userId)), ...mixedFixture]);
    expect((await deliver(gw, users[0]!, body)).status).toBe(200);
    for (const s of sessions) expect(await store.getSession(s.sessionId)).toBeNull();
    expect(await stamps(gw, 'in_force')).toBe(50);
    const targets = (await gw.commands()).map((c) => c.target.type);
    expect(targets.filter((t) => t === 'user')).toHaveLength(50);
    expect(targets.filter((t) => t === 'idp_session')).toHaveLength(1);
  });

  it('with REVOKE_ON_RECEIPT=false leaves the revocation to the worker', async () => {
    const gw = await gateway({ REVOKE_ON_RECEIPT: 'false' });
    const carol = user();
    const c = await store.createSession({ userId: carol, ttlSeconds: 600 });
    expect((await deliver(gw, carol)).status).toBe(200);
    expect(await store.getSession(c.sessionId)).not.toBeNull();
    expect((await gw.commands()).map((cmd) => cmd.target)).toEqual([{ type: 'user', userId: carol }]);
    expect(await stamps(gw, 'in_force')).toBe(0);
  });

  /** A gateway whose queue is on the shared Redis and whose sessions are on a Redis of its own. */
  async function withOwnSessionRedis(
    test: (gw: TestGateway, sessions: Awaited<ReturnType<typeof startRedisServer>>) => Promise<void>,
  ) {
    const [port] = await freePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'receipt-sessions-'));
    const sessions = await startRedisServer(port!, dir);
    try {
      const gw = await gateway({
        QUEUE_REDIS_URL: REDIS_URL,
        REDIS_URL: `redis://127.0.0.1:${port}`,
        ENQUEUE_TIMEOUT_MS: '3000',
      });
      await test(gw, sessions);
    } finally {
      sessions.process.kill('SIGCONT');
      sessions.process.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('queues and acknowledges the delivery when the session Redis is down, the stamp counted as failed', async () => {
    await withOwnSessionRedis(async (gw, sessions) => {
      sessions.process.kill('SIGKILL');
      await new Promise((r) => sessions.process.once('exit', r));
      const client = gw.app.get<RedisClient>(SESSION_REDIS, { strict: false });
      await waitFor(() => client.status !== 'ready', 'the gateway to see its session Redis gone');
      const dave = user();
      expect((await deliver(gw, dave)).status).toBe(200);
      expect((await gw.commands()).map((cmd) => cmd.target)).toEqual([{ type: 'user', userId: dave }]);
      expect(await stamps(gw, 'failed')).toBe(1);
      expect((await stamps(gw, 'in_force')) + (await stamps(gw, 'late'))).toBe(0);
    });
  });

  it('answers within its deadline when the session Redis hangs, the stamp counted as late', async () => {
    await withOwnSessionRedis(async (gw, sessions) => {
      sessions.process.kill('SIGSTOP'); // connected, and answers nothing
      const erin = user();
      // 200, not the 503 of a missed deadline: the stamp had half of ENQUEUE_TIMEOUT_MS.
      expect((await deliver(gw, erin)).status).toBe(200);
      expect((await gw.commands()).map((cmd) => cmd.target)).toEqual([{ type: 'user', userId: erin }]);
      expect(await stamps(gw, 'late')).toBe(1);
      expect((await stamps(gw, 'in_force')) + (await stamps(gw, 'failed'))).toBe(0);
    });
  });
});
