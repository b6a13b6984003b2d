import type { INestApplicationContext } from '@nestjs/common';
import { getQueueToken } from '@nestjs/bullmq';
import { type Job, Queue, Worker } from 'bullmq';
import { randomBytes } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { QUEUE_REDIS, type RedisClient, SESSION_REDIS } from '#redis';
import {
  AuditLog,
  commandId,
  inFlight,
  producerOptions,
  QueueKeys,
  REVOCATION_QUEUE,
  RevocationProducer,
  type RevocationCommand,
  untilWarm,
  type WarmUpReport,
} from '#revocation';
import { SessionStore } from '#session-store';
import { RevocationExecutor } from './revocation.executor.js';
import { processRevocation, RevocationProcessor, revocationWorkerOptions } from './revocation.processor.js';

/** Jobs per warm-up batch: each batch is enqueued, then waited for until every job of it is done. */
const BATCH = 200;
/** A batch not done within this long ends the warm-up (a Redis that stopped answering). */
const BATCH_TIMEOUT_MS = 10_000;

/**
 * Runs the worker's job path warm before the process says it is ready, then waits until its revocation
 * workers are connected and fetching. A fresh worker's first jobs otherwise run cold: every function of
 * BullMQ's fetch and finish, the command's schema, the executor and ioredis is interpreted at first,
 * several times the CPU of a warm job, and in `npm start` that cost lands on the gateway's event loop.
 *
 * The warm-up's jobs take the real path, with nothing of it visible outside: a queue of its own
 * (`revocations-warm-up-<random>`, under the queue prefix, removed after), the same job handler and
 * worker options as the real workers (`processRevocation`, `revocationWorkerOptions`), and a
 * `RevocationExecutor` whose store writes under `<SESSION_PREFIX>.warm-up` (stamps that live a minute
 * and are deleted after), whose audit goes to a stream of its own (deleted after) and whose metrics
 * are a registry nobody scrapes. The jobs revoke users who hold nothing. A failure (Redis out of
 * reach) ends the warm-up; the worker starts anyway, as it would have without it.
 */
export async function warmUpWorker(app: INestApplicationContext): Promise<WarmUpReport> {
  const config = app.get<AppConfig>(APP_CONFIG);
  const queueRedis = app.get<RedisClient>(QUEUE_REDIS);
  const sessionRedis = app.get<RedisClient>(SESSION_REDIS);
  const realQueue = app.get<Queue>(getQueueToken(REVOCATION_QUEUE));
  const nonce = randomBytes(6).toString('base64url');
  const keys = new QueueKeys(config.redis.queuePrefix);
  const queue = new Queue(`${REVOCATION_QUEUE}-warm-up-${nonce}`, {
    connection: queueRedis,
    prefix: config.redis.queuePrefix,
  });
  // Its connection's errors are the client's, logged there (a Queue with no listener would throw them).
  queue.on('error', () => undefined);
  // The session prefix may be 64 characters, the most a prefix can be: then the warm-up has its own.
  const prefix = `${config.redis.sessionPrefix}.warm-up`;
  const store = new SessionStore({
    redis: sessionRedis,
    prefix: prefix.length <= 64 ? prefix : 'session-revoker.warm-up',
    tagSecret: config.session.tagSecret ?? '',
    clockSkewMs: config.session.clockSkewMs,
    stampRetentionSeconds: 60,
  });
  const audit = new AuditLog(queueRedis, keys.warmUpAudit(nonce), 100);
  const executor = new RevocationExecutor(
    store,
    new RevokerMetrics(),
    queue,
    queueRedis,
    sessionRedis,
    config,
    audit,
  );
  const producer = new RevocationProducer(queue, queueRedis, producerOptions(config));
  let done = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const worker = new Worker(
    queue.name,
    (job: Job) => processRevocation(job, executor),
    revocationWorkerOptions(config, queueRedis),
  );
  const finished = (err?: Error) => {
    done++;
    failure ??= err;
    wake?.();
  };
  worker.on('completed', () => finished());
  worker.on('failed', (_job, err) => finished(err));
  // An error of the worker's own (its connection) ends the warm-up rather than waiting on it.
  worker.on('error', (err) => {
    failure ??= err;
    wake?.();
  });
  const users: string[] = [];
  const commands: string[] = [];
  let report: WarmUpReport;
  try {
    report = await untilWarm(
      async (b) => {
        const batch: RevocationCommand[] = Array.from({ length: BATCH }, (_, i) => {
          const n = b * BATCH + i;
          const userId = `revoker-warm-up-${nonce}-${n}`;
          const eventId = `revoker-warm-up-${nonce}-${n}`;
          const id = commandId('pingone', eventId);
          users.push(userId);
          commands.push(id);
          // As the gateway makes them of a PingOne event.
          return {
            id,
            target: { type: 'user', userId },
            source: 'pingone',
            eventType: 'USER.DELETED',
            eventId,
            notBefore: Date.now(),
            receivedAt: Date.now(),
          };
        });
        const target = done + BATCH;
        // One command per enqueue, as a one-event delivery comes in, a few at a time.
        await inFlight(BATCH, 16, (i) => producer.enqueue([batch[i]!]));
        const late = Date.now() + BATCH_TIMEOUT_MS;
        while (done < target && !failure && Date.now() < late)
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 100).unref();
          });
        if (failure) throw failure;
        if (done < target) throw new Error(`warm-up jobs not done within ${BATCH_TIMEOUT_MS} ms`);
      },
      { batchSize: BATCH },
    );
  } finally {
    await worker.close(true).catch(() => undefined);
    await cleanUp(queue, queueRedis, sessionRedis, store, audit.key, users, commands, keys);
  }
  // The real workers: connected, their first fetch made (a worker that has not yet connected its
  // blocking connection would leave the first jobs waiting for it). The real queue's client too.
  await realQueue.waitUntilReady();
  await Promise.all(app.get(RevocationProcessor).workers.map((w) => w.waitUntilReady()));
  return report;
}

/** Removes everything the warm-up wrote: its queue, its audit stream, its stamps and its dedup marks. */
async function cleanUp(
  queue: Queue,
  queueRedis: RedisClient,
  sessionRedis: RedisClient,
  store: SessionStore,
  auditKey: string,
  users: string[],
  commands: string[],
  keys: QueueKeys,
): Promise<void> {
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close().catch(() => undefined);
  const del = async (redis: RedisClient, all: string[]) => {
    // Stamps live in their users' slots: one DEL each (a cluster cannot take them in one).
    for (let i = 0; i < all.length; i += 100)
      await Promise.all(all.slice(i, i + 100).map((k) => redis.del(k))).catch(() => undefined);
  };
  await del(queueRedis, [auditKey, ...commands.map((c) => keys.dedup(c))]);
  await del(
    sessionRedis,
    users.map((u) => store.keys.notBefore(store.keys.userTag(u))),
  );
}
