import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type AppConfig, loadConfig } from '#config';
import { parsePingOneBody } from '#identity-events';
import {
  type EnqueueResult,
  producerOptions,
  QueueKeys,
  REVOCATION_QUEUE,
  type RevocationCommand,
  RevocationProducer,
} from '#revocation';
import { REDIS_URL } from './redis.js';

/** Every queue the worker creates keys for under its prefix. */
const WORKER_QUEUES = [REVOCATION_QUEUE, 'revocations-priority', 'maintenance'];

/**
 * The producer side of the revocation queue without the HTTP gateway: the same parser, producer and
 * job options the gateway uses, on the queue Redis of `env`. For worker tests.
 */
export interface TestQueue {
  config: AppConfig;
  queue: Queue;
  /** A client of the queue Redis. */
  redis: Redis;
  producer: RevocationProducer;
  /** What the gateway does with a PingOne webhook body: parse it and enqueue its commands. */
  ingestPingOne(body: unknown): Promise<EnqueueResult>;
  enqueue(commands: RevocationCommand[], options?: { bypassDedup?: boolean }): Promise<EnqueueResult>;
  /**
   * Deletes what the worker and the producer wrote under the queue prefix (the queues, the audit
   * stream, the memory readings, the dedup marks) and closes the clients. Close the workers first.
   */
  close(): Promise<void>;
}

export function openQueue(env: Record<string, string>): TestQueue {
  const config = loadConfig({ REDIS_URL, ...env });
  const redis = new Redis(config.redis.queueUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue(REVOCATION_QUEUE, { connection: redis, prefix: config.redis.queuePrefix });
  const producer = new RevocationProducer(queue, redis, producerOptions(config));
  return {
    config,
    queue,
    redis,
    producer,
    async ingestPingOne(body) {
      const parsed = parsePingOneBody(Buffer.from(JSON.stringify(body)), {
        mapping: config.pingone.mapping,
        receivedAt: Date.now(),
      });
      if (parsed.quarantined.length)
        throw new Error(`the test event was quarantined: ${JSON.stringify(parsed.quarantined)}`);
      return producer.enqueue(parsed.commands);
    },
    enqueue: (commands, options) => producer.enqueue(commands, options),
    async close() {
      await dropQueueKeys(redis, config.redis.queuePrefix);
      await queue.close();
      redis.disconnect();
    },
  };
}

/**
 * Deletes the worker's queues under `prefix` and the other keys the service writes there, without a
 * SCAN of the whole (shared) keyspace: dedup marks are found from the command ids of the jobs.
 */
export async function dropQueueKeys(redis: Redis, prefix: string): Promise<void> {
  const ids = new Set<string>();
  for (const name of WORKER_QUEUES) {
    const queue = new Queue(name, { connection: redis, prefix });
    try {
      for (const job of await queue.getJobs()) {
        const id = (job?.data as { id?: unknown } | undefined)?.id;
        if (typeof id === 'string') ids.add(id);
      }
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }
  const queueKeys = new QueueKeys(prefix);
  const keys = [queueKeys.audit, queueKeys.memory, ...[...ids].map((id) => queueKeys.dedup(id))];
  for (let i = 0; i < keys.length; i += 500) await redis.unlink(...keys.slice(i, i + 500));
}
