import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { spawnGatewayAndWorker, type ServiceProcess } from '../support/cluster-processes.js';
import { waitFor } from '../support/redis.js';
import { type OwnRedis, startOwnRedis } from '../support/reliability-redis.js';

const SECRET = 'outage-webhook-secret-0123456789';
const TAG_SECRET = 'outage-session-tag-secret-0123456789';

/** A PingOne USER.DELETED delivery to the gateway. */
function deliverUserDeleted(gateway: ServiceProcess, eventId: string, userId: string): Promise<Response> {
  return fetch(`${gateway.url}/webhooks/pingone`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      id: eventId,
      recordedAt: new Date().toISOString(),
      action: { type: 'USER.DELETED' },
      resources: [{ type: 'USER', id: userId }],
      result: { status: 'SUCCESS' },
    }),
  });
}

/**
 * A gateway and a worker (separate processes) through a Redis outage of a few seconds. While Redis is
 * down, ioredis retries and BullMQ's workers retry several times a second: the logs must say so as
 * JSON, once per client, queue and worker, and say when it is back. Once it is back, the worker must
 * take revocations again at once, not after a back-off of many seconds.
 */
describe('a Redis outage', () => {
  let server: OwnRedis;
  let gateway: ServiceProcess;
  let worker: ServiceProcess;

  beforeAll(async () => {
    server = await startOwnRedis('outage');
    const env = {
      REDIS_URL: server.url,
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: 'info',
    };
    ({ gateway, worker } = await spawnGatewayAndWorker(env));
  }, 40_000);

  afterAll(async () => {
    await Promise.all([gateway?.stop(), worker?.stop()]);
    await server?.stop();
  });

  it('is logged as one JSON warning per client, queue and worker, and a line when it is back', async () => {
    const startedAt = { gateway: gateway.output().length, worker: worker.output().length };
    await server.kill();
    // A delivery meanwhile: refused (503), and it makes the gateway's queue client fail a command too.
    await waitFor(async () => {
      const res = await deliverUserDeleted(gateway, 'outage-1', 'user-1');
      return res.status === 503;
    }, 'a delivery refused while Redis is down');
    const since = (p: ServiceProcess, role: 'gateway' | 'worker') => p.output().slice(startedAt[role]);
    const lines = (text: string) => text.split('\n').filter(Boolean);
    const parsed = (line: string) => {
      try {
        return JSON.parse(line) as { level: number; msg: string };
      } catch {
        return undefined;
      }
    };
    /** Every warning's message, whatever the error (ECONNREFUSED, "Connection is closed", ...). */
    const messages = (text: string) =>
      lines(text)
        .map(parsed)
        .filter((l) => l?.level === 40)
        .map((l) => l!.msg);
    /** The sources that warned: "queue Redis", "worker of revocations", ... */
    const warnings = (text: string) => messages(text).map((m) => m.split(':')[0]!);
    // Both have noticed everything they hold, then several seconds of reconnect attempts go by.
    await waitFor(() => warnings(since(worker, 'worker')).includes('session Redis'), 'the worker to notice');
    await waitFor(() => warnings(since(gateway, 'gateway')).includes('queue Redis'), 'the gateway to notice');
    await new Promise((resolve) => setTimeout(resolve, 4000));

    await server.restart();
    const back = (p: ServiceProcess, role: 'gateway' | 'worker') =>
      since(p, role).includes('queue Redis: connected again') &&
      since(p, role).includes('session Redis: connected again');
    await waitFor(() => back(gateway, 'gateway') && back(worker, 'worker'), 'both to reconnect', 15_000);

    for (const [role, p] of [
      ['gateway', gateway],
      ['worker', worker],
    ] as const) {
      const text = since(p, role);
      // Every line is JSON: no "[ioredis] Unhandled error event", no stack trace.
      expect({
        role,
        notJson: lines(text)
          .filter((l) => !parsed(l))
          .slice(0, 3),
      }).toEqual({
        role,
        notJson: [],
      });
      // Retries of the same error are not repeated.
      const said = messages(text);
      expect({ role, repeated: said.filter((m, i) => said.indexOf(m) !== i) }).toEqual({
        role,
        repeated: [],
      });
    }
    expect(new Set(warnings(since(gateway, 'gateway')))).toEqual(
      new Set([
        'queue Redis',
        'session Redis',
        'queue revocations',
        'queue revocations-priority',
        'queue maintenance',
      ]),
    );
    expect(warnings(since(worker, 'worker'))).toEqual(
      expect.arrayContaining(['queue Redis', 'session Redis', 'worker of revocations', 'maintenance worker']),
    );
  }, 60_000);
  // Runs after the outage above. ioredis 6 backs off to 5 s between attempts and BullMQ's worker to
  // 15 s after a connection error: with those, its blocking connections were still reconnecting 10 s
  // after Redis was back, no job was taken, and a shutdown waited out the whole grace period.
  it('is over for the worker within moments: it revokes at once, and stops promptly', async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const store = new SessionStore({ redis, tagSecret: TAG_SECRET, clockSkewMs: 0 });
      const session = await store.createSession({
        userId: 'outage-user',
        ttlSeconds: 3600,
        issuedAt: Date.now() - 60_000,
      });
      const res = await deliverUserDeleted(gateway, 'outage-2', 'outage-user');
      expect(res.status).toBe(200);
      await waitFor(async () => (await store.getSession(session.sessionId)) === null, 'the revocation', 5000);

      const stopping = Date.now();
      await worker.stop(30_000);
      const stoppedWithinMs = Date.now() - stopping;
      expect({
        fast: stoppedWithinMs < 5000,
        graceOver: worker.output().includes('grace period over'),
      }).toEqual({
        fast: true,
        graceOver: false,
      });
    } finally {
      redis.disconnect();
    }
  }, 30_000);
});
