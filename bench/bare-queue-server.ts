// The baseline of `npm run bench:ingest`: a bare Fastify route that parses JSON and does nothing but put
// each event on a BullMQ queue (queue.add for one event, queue.addBulk for several). No auth, no mapping,
// no dedup, no Nest. Started as a child process by bench/ingest.bench.ts; env PORT, REDIS_URL, QUEUE_PREFIX.
import Fastify from 'fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const port = Number(process.env['PORT'] ?? 3001);
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const prefix = process.env['QUEUE_PREFIX'] ?? '{bare}';

// Same client settings and job options as the gateway's defaults, so Redis does the same work per job.
const redis = new Redis(redisUrl, {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
});
const queue = new Queue('revocations', { connection: redis, prefix });
const jobOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: false,
} as const;

interface EventLike {
  id?: unknown;
  action?: { type?: unknown };
}

const job = (e: EventLike, receivedAt: number) => {
  const id = String(e.id);
  return {
    name: 'revoke',
    data: { eventId: id, eventType: String(e.action?.type), receivedAt },
    opts: { ...jobOptions, jobId: id },
  };
};

const app = Fastify({ bodyLimit: 5 * 1024 * 1024 });

app.get('/health', async () => ({ status: 'ok' }));

app.post('/enqueue', async (request) => {
  const body = request.body as EventLike | EventLike[];
  const receivedAt = Date.now();
  const events = Array.isArray(body) ? body : [body];
  if (events.length === 1) {
    const { name, data, opts } = job(events[0]!, receivedAt);
    await queue.add(name, data, opts);
  } else {
    await queue.addBulk(events.map((e) => job(e, receivedAt)));
  }
  return { enqueued: events.length };
});

const shutdown = async () => {
  await app.close();
  await queue.close();
  redis.disconnect();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
await app.listen({ port, host: '127.0.0.1' });
console.log(`bare queue server listening on http://127.0.0.1:${port}`);
