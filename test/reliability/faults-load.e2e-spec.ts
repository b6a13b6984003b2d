import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { commandId, QueueKeys, type RevocationCommand } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { type ChildWorker, spawnWorker } from '../support/child-worker.js';
import { inBatches } from '../support/commands.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { listenGateway, metricSum, postPingOne, scrape, userEvent } from '../support/reliability-http.js';
import { SessionKeys } from '../support/session-keys.js';

const SECRET = 'load-webhook-secret';
const TAG_SECRET = 'load-tag-secret-0123456789';
const PRODUCERS = 20;
const CHILD_WORKERS = 2;
const CONCURRENCY_EACH = 10;
const DISTINCT = 4000;
const DUPLICATES = 1000;
/** Fewer sessions than events: each user is named by four distinct events (of four types). */
const USERS = 1000;
/** Events delivered twice at the same moment (two senders racing with one event). */
const PAIRS = 200;
const TYPES = ['USER.DELETED', 'USER.LOCKED', 'PASSWORD.RESET', 'USER_CREDENTIAL.REVOKED'];

/** Events per delivery (PingOne batches up to 500); a redelivery repeats a whole delivery. */
const BATCH = 5;

interface Planned {
  n: number;
  eventId: string;
  userId: string;
  type: string;
}

interface PlannedDelivery {
  events: Planned[];
  /** Redelivered once (the whole batch, as PingOne retries it), after its first delivery got 200. */
  redelivered: boolean;
}

describe('20 producers, 20 consumers: 4,000 distinct events and 1,000 redeliveries', () => {
  let gw: TestGateway;
  let base: string;
  const workers: ChildWorker[] = [];
  let redis: Redis;
  let keys: SessionKeys;
  let env: Record<string, string>;
  let pairs: { told: string[]; enqueued: number; duplicate: number } | undefined;

  beforeAll(async () => {
    env = {
      REDIS_URL,
      QUEUE_PREFIX: `{${uniquePrefix('load-q')}}`,
      SESSION_PREFIX: uniquePrefix('load-s'),
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: SECRET,
      // The shared test Redis can stall for seconds under other suites' load: do not turn that into 503s.
      ENQUEUE_TIMEOUT_MS: '15000',
      WORKER_CONCURRENCY: String(CONCURRENCY_EACH),
      WORKER_PORT: '0',
    };
    gw = await startGateway(env);
    base = await listenGateway(gw);
    redis = new Redis(REDIS_URL);
    keys = new SessionKeys(new SessionStore({ redis, prefix: env['SESSION_PREFIX'], tagSecret: TAG_SECRET }));
    workers.push(
      ...(await Promise.all(Array.from({ length: CHILD_WORKERS }, () => spawnWorker(env, 40_000)))),
    );
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await gw?.close();
    await keys?.delete(redis);
    redis?.disconnect();
  });

  it('applies each distinct event once, counts every redelivery as a duplicate, loses none', async () => {
    const t0 = Date.now();
    const issuedAt = t0 - 3_600_000;
    const users = Array.from({ length: USERS }, (_, i) => `load-user-${i}`);
    const sessions: CreatedSession[] = await inBatches(users, 100, (userId) =>
      keys.create({ userId, ttlSeconds: 3600, issuedAt }),
    );
    const eventAt = t0 - 60_000;
    const plan: Planned[] = Array.from({ length: DISTINCT }, (_, n) => ({
      n,
      eventId: `load-event-${n}`,
      userId: users[n % USERS]!,
      type: TYPES[Math.floor(n / USERS) % TYPES.length]!,
    }));
    const everyNth = DISTINCT / DUPLICATES;
    const deliveries: PlannedDelivery[] = Array.from({ length: DISTINCT / BATCH }, (_, d) => ({
      events: plan.slice(d * BATCH, (d + 1) * BATCH),
      redelivered: d % everyNth === 0,
    }));
    const body = (d: PlannedDelivery) =>
      d.events.map((p) => userEvent(p.eventId, p.userId, eventAt + p.n, p.type));

    // 20 sender loops share one stream: the deliveries in order, and, once its first delivery was
    // answered 200, a redelivery of every fourth one (so each redelivery is causally after it).
    let next = 0;
    const redeliverable: PlannedDelivery[] = [];
    const answers = { first: [] as number[], again: [] as number[] };
    let enqueued = 0;
    let duplicates = 0;
    const unexpected: string[] = [];
    let maxActive = 0;
    let draining = true;
    const sampler = (async () => {
      while (draining) {
        const { active } = await gw.queue.getJobCounts('active');
        maxActive = Math.max(maxActive, active ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const started = Date.now();
    await Promise.all(
      Array.from({ length: PRODUCERS }, async (_, loop) => {
        for (let k = 0; ; k++) {
          const again = redeliverable.length > 0 && (k % 4 === loop % 4 || next >= deliveries.length);
          const d = again ? redeliverable.shift()! : deliveries[next++];
          if (!d) return;
          const res = await postPingOne(base, SECRET, body(d));
          (again ? answers.again : answers.first).push(res.status);
          const what = `${d.events[0]!.eventId}..${again ? ' (again)' : ''}`;
          if (res.status !== 200) {
            unexpected.push(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
            continue;
          }
          const b = res.body as { enqueued: number; duplicates: number };
          enqueued += b.enqueued;
          duplicates += b.duplicates;
          if ((again ? b.duplicates : b.enqueued) !== BATCH) unexpected.push(`${what}: ${JSON.stringify(b)}`);
          if (!again && d.redelivered) redeliverable.push(d);
        }
      }),
    );
    const sent = Date.now();
    await waitForQueuesIdle([gw.queue], 60_000);
    const drained = Date.now();
    draining = false;
    await sampler;

    expect(unexpected).toEqual([]);
    expect({ first: answers.first.length, again: answers.again.length }).toEqual({
      first: DISTINCT / BATCH,
      again: DUPLICATES / BATCH,
    });
    expect({ enqueued, duplicates }).toEqual({ enqueued: DISTINCT, duplicates: DUPLICATES });
    const metrics = await scrape(base);
    const received = (outcome: string) =>
      metricSum(metrics, 'session_revoker_events_received_total', { source: 'pingone', outcome });
    expect({ enqueued: received('enqueued'), duplicate: received('duplicate') }).toEqual({
      enqueued: DISTINCT,
      duplicate: DUPLICATES,
    });

    // One job per distinct event, all completed by the 20 consumers, none failed.
    expect(await gw.queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed')).toEqual({
      completed: DISTINCT,
      failed: 0,
      waiting: 0,
      active: 0,
      delayed: 0,
    });
    expect(maxActive).toBeLessThanOrEqual(CHILD_WORKERS * CONCURRENCY_EACH);
    const jobs = await gw.queue.getJobs(['completed'], 0, DISTINCT + DUPLICATES);
    expect(new Set(jobs.map((j) => j.id))).toEqual(new Set(plan.map((p) => commandId('pingone', p.eventId))));
    // Each session was deleted by exactly one of its user's four jobs.
    const revoked = jobs.reduce((n, j) => n + (j.returnvalue as { revoked: number }).revoked, 0);
    expect(revoked).toBe(USERS);

    // The audit shows each event id exactly once.
    const audit = await gw.redis.xrange(new QueueKeys(env['QUEUE_PREFIX']!).audit, '-', '+');
    const audited = audit.map(([, fields]) => (JSON.parse(fields[1]!) as { eventId: string }).eventId);
    expect(audited).toHaveLength(DISTINCT);
    expect(new Set(audited).size).toBe(DISTINCT);
    expect(new Set(jobs.map((j) => (j.data as RevocationCommand).eventId))).toEqual(new Set(audited));

    const readable = await inBatches(sessions, 200, (s) => keys.store.getSession(s.sessionId));
    expect(readable.filter(Boolean)).toHaveLength(0);

    process.stdout.write(
      `faults-load: ${JSON.stringify({
        events: DISTINCT + DUPLICATES,
        deliveries: (DISTINCT + DUPLICATES) / BATCH,
        sendMs: sent - started,
        eventsPerSecond: Math.round(((DISTINCT + DUPLICATES) * 1000) / (sent - started)),
        drainAfterSendMs: drained - sent,
        maxActiveObserved: maxActive,
        sessionsRevoked: revoked,
      })}\n`,
    );
  }, 120_000);

  it('the same event delivered twice at the same moment still makes one job, run once', async () => {
    const users = Array.from({ length: PAIRS }, (_, i) => `load-pair-user-${i}`);
    const sessions = await inBatches(users, 100, (userId) =>
      keys.create({ userId, ttlSeconds: 3600, issuedAt: Date.now() - 3_600_000 }),
    );
    const events = users.map((userId, i) => userEvent(`load-pair-event-${i}`, userId, Date.now() - 60_000));
    const before = await scrape(base);
    const answers = await inBatches(events, PRODUCERS / 2, (event) =>
      Promise.all([postPingOne(base, SECRET, [event]), postPingOne(base, SECRET, [event])]),
    );
    await waitForQueuesIdle([gw.queue], 30_000);

    expect(answers.flat().filter((a) => a.status !== 200)).toEqual([]);
    const ids = events.map((e) => commandId('pingone', e.id));
    const jobs = await Promise.all(ids.map((id) => gw.queue.getJob(id)));
    expect(await Promise.all(jobs.map((j) => j?.getState()))).toEqual(ids.map(() => 'completed'));
    const audit = await gw.redis.xrange(new QueueKeys(env['QUEUE_PREFIX']!).audit, '-', '+');
    const audited = audit
      .map(([, fields]) => (JSON.parse(fields[1]!) as { eventId: string }).eventId)
      .filter((id) => id.startsWith('load-pair-event-'));
    expect(audited.sort()).toEqual(events.map((e) => e.id).sort());
    const readable = await inBatches(sessions, 100, (s) => keys.store.getSession(s.sessionId));
    expect(readable.filter(Boolean)).toHaveLength(0);

    const after = await scrape(base);
    const counted = (outcome: string) =>
      metricSum(after, 'session_revoker_events_received_total', { outcome }) -
      metricSum(before, 'session_revoker_events_received_total', { outcome });
    pairs = {
      told: answers.map((pair) => pair.map((a) => (a.body as { enqueued: number }).enqueued).join('+')),
      enqueued: counted('enqueued'),
      duplicate: counted('duplicate'),
    };
    process.stdout.write(
      `faults-load (simultaneous pairs): ${JSON.stringify({
        pairs: PAIRS,
        jobs: jobs.length,
        bothToldEnqueued: pairs.told.filter((t) => t === '1+1').length,
        metricEnqueued: pairs.enqueued,
        metricDuplicate: pairs.duplicate,
      })}\n`,
    );
  }, 60_000);

  // Fails today: RevocationProducer checks the dedup mark (EXISTS) before addBulk and sets it after;
  // two deliveries of one event inside that window both see no mark, both addBulk the same job id
  // (BullMQ keeps the first and silently ignores the second), and both are reported "enqueued": in
  // the response body and in session_revoker_events_received_total. The effect is still once (above).
  it('counts one of two simultaneous deliveries of an event as a duplicate (sender answer and metrics)', () => {
    expect(pairs).toBeDefined();
    expect({
      toldEnqueuedTwice: pairs!.told.filter((t) => t === '1+1').length,
      enqueued: pairs!.enqueued,
      duplicate: pairs!.duplicate,
    }).toEqual({ toldEnqueuedTwice: 0, enqueued: PAIRS, duplicate: PAIRS });
  });
});
