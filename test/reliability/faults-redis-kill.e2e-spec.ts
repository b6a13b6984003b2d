import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { AuditLog, commandId, QueueKeys, REVOCATION_QUEUE } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from '../support/commands.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { uniquePrefix, waitFor } from '../support/redis.js';
import { listenGateway, pause, pool, postPingOne, userEvent } from '../support/reliability-http.js';
import {
  type DurableRedis,
  muteConsole,
  quietQueues,
  startDurableRedis,
} from '../support/reliability-redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const SECRET = 'redis-kill-webhook-secret';
const TAG_SECRET = 'redis-kill-tag-secret-0123456789';
const EVENTS = 240;
const SENDERS = 4;
/** The sender honours Retry-After, shortened: a fiftieth of it (5 s becomes 100 ms). */
const RETRY_AFTER_SCALE = 1 / 50;

interface EventLog {
  eventId: string;
  userId: string;
  jobId: string;
  /** Every answer the sender got for this event, in order (0: no answer). */
  statuses: number[];
  /** What the 200 said of the event: enqueued now, or a duplicate of an earlier delivery. */
  answer?: 'enqueued' | 'duplicate' | 'other';
  /** When the one 200 arrived. */
  ackedAt?: number;
  /** Right after the 200, was the job in Redis? ('unknown' when Redis could not be asked). */
  storedAtAck?: 'yes' | 'no' | 'unknown';
}

describe.each([
  { path: 'one script per event', oneScript: 'true' },
  { path: 'three steps', oneScript: 'false' },
])(
  'Redis SIGKILLed in the middle of a stream of deliveries (gateway + worker on that one Redis; $path)',
  ({ oneScript }) => {
    let redis: DurableRedis;
    let gw: TestGateway;
    let worker: TestWorker;
    let base: string;
    let store: SessionStore;
    let sessionClient: Redis;
    /** Asks Redis whether a job exists right after its 200; fails fast instead of queueing while Redis is down. */
    let checker: Redis;
    let env: Record<string, string>;
    let restoreConsole: () => void;

    beforeAll(async () => {
      redis = await startDurableRedis(`kill-${oneScript}`);
      restoreConsole = muteConsole([
        new RegExp(`127\\.0\\.0\\.1:${redis.port}\\b`),
        /Connection is closed|ECONNRESET|LOADING|socket closed|Stream isn't writeable/i,
      ]);
      env = {
        REDIS_URL: redis.url,
        QUEUE_PREFIX: `{${uniquePrefix('kill-q')}}`,
        SESSION_PREFIX: uniquePrefix('kill-s'),
        SESSION_TAG_SECRET: TAG_SECRET,
        PINGONE_WEBHOOK_SECRET: SECRET,
        ENQUEUE_TIMEOUT_MS: '1000',
        WORKER_CONCURRENCY: '8',
        // A job whose worker lost Redis mid-flight comes back within seconds (as a stalled job).
        LOCK_DURATION_MS: '2000',
        STALLED_INTERVAL_MS: '1000',
        JOB_BACKOFF_MS: '200',
        ENQUEUE_ONE_SCRIPT: oneScript,
      };
      gw = await startGateway(env);
      quietQueues(gw.app, [gw.queue, gw.redis]);
      base = await listenGateway(gw);
      worker = await startWorker(env);
      quietQueues(worker.app);
      sessionClient = new Redis(redis.url, { retryStrategy: () => 100 });
      sessionClient.on('error', () => undefined);
      store = new SessionStore({
        redis: sessionClient,
        prefix: env['SESSION_PREFIX'],
        tagSecret: TAG_SECRET,
      });
      checker = new Redis(redis.url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => 50,
        // Usable as soon as it reconnects: its ready check (INFO, then a wait while Redis loads its AOF)
        // once left it refusing for longer than the gateway, whose 200s then went unchecked.
        enableReadyCheck: false,
      });
      checker.on('error', () => undefined);
    }, 30_000);

    afterAll(async () => {
      await worker?.close();
      await gw?.close();
      checker?.disconnect();
      sessionClient?.disconnect();
      await redis?.stop();
      restoreConsole?.();
    });

    it('answers every delivery 200 or 503, loses no acknowledged command, and applies every event once Redis is back', async () => {
      const hourAgo = Date.now() - 3_600_000;
      const users = Array.from({ length: EVENTS }, (_, i) => `kill-user-${i}`);
      const sessions: CreatedSession[][] = await inBatches(users, 40, (userId) =>
        Promise.all([0, 1].map(() => store.createSession({ userId, ttlSeconds: 3600, issuedAt: hourAgo }))),
      );
      const log: EventLog[] = users.map((userId, i) => {
        const eventId = `kill-event-${i}`;
        return { eventId, userId, jobId: commandId('pingone', eventId), statuses: [] };
      });
      const jobKey = (jobId: string) => `${env['QUEUE_PREFIX']}:${REVOCATION_QUEUE}:${jobId}`;
      /** Whether the job is in Redis, asked right after its 200: a few tries 50 ms apart while the checker reconnects. */
      const storedNow = async (key: string): Promise<'yes' | 'no' | 'unknown'> => {
        for (let attempt = 0; attempt < 5; attempt++) {
          try {
            return (await checker.exists(key)) === 1 ? 'yes' : 'no';
          } catch {
            await pause(50);
          }
        }
        return 'unknown';
      };
      let acked = 0;
      let killedAt = Infinity;

      const started = Date.now();
      const deadline = started + 60_000;
      const senders = pool(log, SENDERS, async (entry) => {
        for (;;) {
          if (Date.now() > deadline) throw new Error(`${entry.eventId}: no 200 within 60 s`);
          const res = await postPingOne(base, SECRET, [userEvent(entry.eventId, entry.userId, Date.now())]);
          entry.statuses.push(res.status);
          if (res.status === 200) {
            entry.ackedAt = res.at;
            const body = typeof res.body === 'object' ? res.body : {};
            entry.answer =
              body['enqueued'] === 1 ? 'enqueued' : body['duplicates'] === 1 ? 'duplicate' : 'other';
            acked++;
            entry.storedAtAck = await storedNow(jobKey(entry.jobId));
            return;
          }
          // 503 (and, should one happen, anything else): retry after the shortened Retry-After.
          await pause(Number(res.retryAfter ?? 5) * 1000 * RETRY_AFTER_SCALE);
        }
      });

      // A third of the way in: SIGKILL, let the senders meet the outage, then restart on the same files.
      await waitFor(() => acked >= EVENTS / 3, 'a third of the events acknowledged', 30_000);
      killedAt = await redis.kill();
      const ackedBeforeKill = log.filter((e) => e.ackedAt !== undefined && e.ackedAt < killedAt);
      // Down for at least 1.5 s (the gateway's reconnect back-off reaches 1 s), and seen down by every sender.
      await waitFor(
        () =>
          Date.now() - killedAt >= 1500 &&
          log.reduce((n, e) => n + e.statuses.filter((s) => s === 503).length, 0) >= 3 * SENDERS,
        'the senders to get 503s',
        15_000,
      );
      const downFor = Date.now() - killedAt;
      // Every 200 so far: those answered before the kill, and any whose reply left Redis just before it
      // and reached the sender after (nothing can be acknowledged while Redis is down).
      const ackedBeforeRestart = log.filter((e) => e.ackedAt !== undefined);
      await redis.restart();
      const restartedAt = Date.now();
      /** What the next engineer needs if a check below fails: each event's story, its job and its mark. */
      const tell = async (what: string, events: EventLog[], states: (string | undefined)[] = []) => {
        if (events.length === 0) return;
        const keys = new QueueKeys(env['QUEUE_PREFIX']!);
        // What Redis cannot tell is said as such: the assertion after this is the failure to report.
        const ask = (q: Promise<number>) => q.catch((err: Error) => `unknown (${err.message})`);
        const story = await Promise.all(
          events.map(async (e, i) => ({
            ...e,
            ackedAfterKillMs: e.ackedAt === undefined ? null : e.ackedAt - killedAt,
            ackedAfterRestartMs: e.ackedAt === undefined ? null : e.ackedAt - restartedAt,
            state: states[i] ?? 'not asked',
            jobKeyExists: await ask(gw.redis.exists(jobKey(e.jobId))),
            markTtlMs: await ask(gw.redis.pttl(keys.dedup(e.jobId))),
          })),
        );
        process.stdout.write(`faults-redis-kill, ${what}: ${JSON.stringify(story)}\n`);
      };
      // Straight after the restart, before anything could re-send them: every event acknowledged
      // before it has its job in Redis (the AOF kept it).
      const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      const afterRestart = await Promise.all(ackedBeforeRestart.map((e) => probe.exists(jobKey(e.jobId))));
      probe.disconnect();
      const missingAfterRestart = ackedBeforeRestart.filter((_, i) => afterRestart[i] !== 1);
      await tell('acknowledged, not in Redis after the restart', missingAfterRestart);
      expect(missingAfterRestart.map((e) => e.eventId)).toEqual([]);

      await senders;
      const sent = Date.now();
      await waitForQueuesIdle([gw.queue], 30_000);
      const idle = Date.now();

      const statuses = log.flatMap((e) => e.statuses);
      const count = (s: number) => statuses.filter((x) => x === s).length;
      // Every delivery was answered 200 or 503: no other status, no hang, no dropped connection.
      expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
      expect(count(200)).toBe(EVENTS);
      expect(count(503)).toBeGreaterThan(0);
      // Never 200 without the command stored: checked right after every 200 Redis could answer...
      const notStoredAtAck = log.filter((e) => e.storedAtAck === 'no');
      await tell('not stored right after the 200', notStoredAtAck);
      expect(notStoredAtAck.map((e) => e.eventId)).toEqual([]);
      expect(log.filter((e) => e.storedAtAck === 'yes').length).toBeGreaterThan(EVENTS / 2);

      // ...and at the end: every event's job completed (none failed), each event audited, all sessions gone.
      const states = await Promise.all(log.map(async (e) => (await gw.queue.getJob(e.jobId))?.getState()));
      const unfinished = log.filter((_, i) => states[i] !== 'completed');
      await tell(
        'not completed at the end',
        unfinished,
        unfinished.map((e) => states[log.indexOf(e)] ?? 'missing'),
      );
      expect(unfinished.map((e) => e.eventId)).toEqual([]);
      expect(await gw.queue.getJobCounts('completed', 'failed')).toEqual({ completed: EVENTS, failed: 0 });
      const audit = await new AuditLog(gw.redis, new QueueKeys(env['QUEUE_PREFIX']!).audit, 100_000).read({
        limit: 10 * EVENTS,
      });
      const audited = new Set(audit.map((a) => a.eventId));
      expect(log.filter((e) => !audited.has(e.eventId)).map((e) => e.eventId)).toEqual([]);
      const readable = await inBatches(sessions.flat(), 100, async (s) => store.getSession(s.sessionId));
      expect(readable.filter(Boolean)).toHaveLength(0);

      const stats = {
        eventsIn: EVENTS,
        acknowledgedBeforeKill: ackedBeforeKill.length,
        acknowledgedBeforeRestart: ackedBeforeRestart.length,
        acknowledgedAsDuplicates: log.filter((e) => e.answer === 'duplicate').length,
        redisDownMs: downFor,
        deliveries: statuses.length,
        answered503: count(503),
        maxAttemptsPerEvent: Math.max(...log.map((e) => e.statuses.length)),
        storedCheckedAtAck: log.filter((e) => e.storedAtAck === 'yes').length,
        storedUnknownAtAck: log.filter((e) => e.storedAtAck === 'unknown').length,
        jobsCompleted: EVENTS,
        auditEntries: audit.length,
        auditDistinctEvents: audited.size,
        sessionsRevoked: sessions.flat().length,
        sendMs: sent - started,
        restartToAllAckedMs: sent - restartedAt,
        drainMs: idle - sent,
      };
      process.stdout.write(`faults-redis-kill: ${JSON.stringify(stats)}\n`);
    }, 120_000);
  },
);
