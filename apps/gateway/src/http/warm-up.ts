import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import type { Logger } from 'pino';
import type { AppConfig } from '#config';
import { parsePingOneBody, pingOneWarmUpBody } from '#identity-events';
import { RevokerMetrics } from '#metrics';
import { QUEUE_REDIS, type RedisClient, SESSION_REDIS } from '#redis';
import {
  commandId,
  describeWarmUp,
  inFlight,
  producerOptions,
  QueueKeys,
  REVOCATION_QUEUE,
  RevocationProducer,
  untilWarm,
  type WarmUpReport,
} from '#revocation';
import { SessionStore } from '#session-store';

/** Deliveries per warm-up batch, and in flight at once. */
const WARM_UP_BATCH = 250;
const WARM_UP_IN_FLIGHT = 16;
/** The header whose value (random, this process's) marks a warm-up request. */
const WARM_UP_HEADER = 'x-session-revoker-warm-up';

export function logWarmUp(logger: Logger, what: string, report: WarmUpReport): void {
  if (report.stopped === 'failed') logger.warn(describeWarmUp(what, report));
  else if (report.stopped === 'skipped') logger.debug(`${what}: no warm-up (no PingOne webhook configured)`);
  else logger.info(describeWarmUp(what, report));
}

/**
 * The warm-up's requests log nothing: they carry this process's random token in WARM_UP_HEADER, and
 * their request logger is made silent (the hook costs a real request one header read).
 */
export function silenceWarmUpRequests(app: NestFastifyApplication): string {
  const token = randomBytes(18).toString('base64url');
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', (request, _reply, done) => {
      if (request.headers[WARM_UP_HEADER] === token) request.log.level = 'silent';
      done();
    });
  return token;
}

/**
 * Runs the PingOne delivery path warm before the gateway listens. Cold, a delivery cost four to five
 * times the CPU of a warm one for the first couple of thousand (V8 interprets each function until it
 * has run often enough to be optimised): at 1,000 deliveries a second, that backlog held answers and
 * revocations for up to two seconds after /health/ready said yes.
 *
 * Deliveries go over real HTTP on loopback (a listener on a spare port that hands its connections to
 * the gateway's own server), through everything a PingOne delivery meets: Node's HTTP server, Fastify's
 * hooks, the guard, the parser, the dedup check. Their events' command ids are marked seen first, so
 * they are answered as duplicates and enqueue nothing; the marks are deleted after. The job-adding step
 * (BullMQ's add, the marks) runs on a queue of the warm-up's own (removed after): the same code, no job
 * a worker could take. What the warm-up counted (events received, HTTP durations) is reset, and its
 * requests are not logged. It stops when the CPU a delivery costs stops falling (`untilWarm`), and at the
 * first delivery not answered 200 (a Redis out of reach: the gateway then starts as it did before, and
 * answers 503 until Redis is back).
 */
export async function warmUpGateway(
  app: NestFastifyApplication,
  config: AppConfig,
  token: string,
): Promise<WarmUpReport> {
  const secret = config.pingone.secrets[0];
  const header = config.pingone.authHeader;
  const userId = `revoker-warm-up-${randomBytes(6).toString('base64url')}`;
  const bodyOf = (ids: string[]) => pingOneWarmUpBody(ids, userId, config.pingone);
  if (!secret || bodyOf(['probe']) === undefined)
    return {
      items: 0,
      batches: 0,
      ms: 0,
      costs: [],
      // No PingOne webhook configured (or none its mapping would take): nothing to warm, not a failure.
      stopped: 'skipped',
    };
  const fastify = app.getHttpAdapter().getInstance();
  const redis = app.get<RedisClient>(QUEUE_REDIS);
  const metrics = app.get(RevokerMetrics);
  const keys = new QueueKeys(config.redis.queuePrefix);
  // Nest's init does not make Fastify ready (its listen does): its routes take requests once it is.
  await fastify.ready();
  const relay = createServer((socket) => fastify.server.emit('connection', socket));
  await new Promise<void>((resolve, reject) => relay.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (relay.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: WARM_UP_IN_FLIGHT });
  const headers = {
    'content-type': 'application/json',
    [header]: header === 'authorization' ? `Bearer ${secret}` : secret,
    [WARM_UP_HEADER]: token,
  };
  const post = (body: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        { agent, host: '127.0.0.1', port, method: 'POST', path: '/webhooks/pingone', headers },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const queue = new Queue(`${REVOCATION_QUEUE}-warm-up-${userId}`, {
    connection: redis,
    prefix: config.redis.queuePrefix,
  });
  // Its connection's errors are the client's, logged there (a Queue with no listener would throw them).
  queue.on('error', () => undefined);
  const producer = new RevocationProducer(queue, redis, producerOptions(config));
  const marks: string[] = [];
  try {
    return await untilWarm(
      async (b) => {
        // Most deliveries hold one event; every tenth holds ten (PingOne batches when it is busy).
        const deliveries = Array.from({ length: WARM_UP_BATCH }, (_, i) =>
          Array.from({ length: i % 10 === 9 ? 10 : 1 }, (_, e) => `${userId}-${b}-${i}-${e}`),
        );
        const ids = deliveries.flat().map((e) => commandId('pingone', e));
        marks.push(...ids);
        const pipeline = redis.pipeline();
        for (const id of ids) pipeline.set(keys.dedup(id), '1', 'PX', 60_000);
        for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
        await inFlight(deliveries.length, WARM_UP_IN_FLIGHT, async (i) => {
          const status = await post(bodyOf(deliveries[i]!)!);
          if (status !== 200) throw new Error(`a warm-up delivery was answered ${status}`);
        });
        // The adding step, on the warm-up's own queue: the commands those deliveries would have made.
        const commands = parsePingOneBody(bodyOf(ids.map((id) => `${id}-add`)), {
          ...config.pingone,
          receivedAt: Date.now(),
        }).commands;
        marks.push(...commands.map((c) => c.id));
        await inFlight(commands.length - 10, WARM_UP_IN_FLIGHT, (i) => producer.enqueue([commands[i]!]));
        await producer.enqueue(commands.slice(-10));
      },
      { batchSize: WARM_UP_BATCH },
    );
  } finally {
    agent.destroy();
    relay.close();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close().catch(() => undefined);
    for (let i = 0; i < marks.length; i += 500)
      await redis.del(...marks.slice(i, i + 500).map((id) => keys.dedup(id))).catch(() => undefined);
    // Their receipt stamps (REVOKE_ON_RECEIPT) are of the warm-up's own user, a user no one is: gone too.
    const store = app.get(SessionStore, { strict: false }) as SessionStore | null;
    const sessionRedis = app.get<RedisClient | null>(SESSION_REDIS, { strict: false });
    if (store && sessionRedis)
      await sessionRedis.del(store.keys.notBefore(store.keys.userTag(userId))).catch(() => undefined);
    // Nothing else counts these before the gateway listens: what they hold is the warm-up's.
    metrics.eventsReceived.reset();
    metrics.httpDuration.reset();
    metrics.receiptStamps.reset();
  }
}
