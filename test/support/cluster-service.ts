import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { type AppConfig, loadConfig } from '#config';
import { ALL_QUEUES } from '#revocation';
import { type CreatedSession, SessionStore } from '#session-store';
import { inBatches } from './commands.js';
import type { FailoverCluster } from './cluster-redis.js';
import { bootGateway } from './gateway.js';

export interface InProcessGateway {
  app: NestFastifyApplication;
  config: AppConfig;
  close(): Promise<void>;
}

/**
 * The real gateway module on Fastify, as main.ts builds it, on whatever Redis `env` names (a cluster
 * with REDIS_CLUSTER=true). Unlike startGateway in gateway.ts it opens no standalone client of its own
 * for assertions (that would get MOVED on a cluster): open queues with `openQueues`.
 */
export async function startInProcessGateway(env: Record<string, string>): Promise<InProcessGateway> {
  const config = loadConfig({ LOG_LEVEL: 'silent', EMBEDDED_WORKER: 'false', ...env });
  const app = await bootGateway(config);
  return { app, config, close: () => app.close() };
}

/** The service's three queues (revocations, revocations-priority, maintenance) on `connection`. */
export function openQueues(connection: Redis | Cluster, prefix: string): Record<string, Queue> {
  return Object.fromEntries(
    ALL_QUEUES.map((name) => {
      const queue = new Queue(name, { connection, prefix });
      queue.on('error', () => undefined);
      return [name, queue];
    }),
  );
}

/** The prefixes the cluster suites run the service with (the queue's hash tag keeps it on one master). */
export const CLUSTER_QUEUE_PREFIX = '{sr}';
export const CLUSTER_SESSION_PREFIX = 'sr';

/** Gateway and worker settings on a Redis Cluster reached through `redisUrl`, plus `extra`. */
export function clusterEnv(
  redisUrl: string,
  secrets: { webhook: string; tag: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    REDIS_CLUSTER: 'true',
    QUEUE_PREFIX: CLUSTER_QUEUE_PREFIX,
    SESSION_PREFIX: CLUSTER_SESSION_PREFIX,
    PINGONE_WEBHOOK_SECRET: secrets.webhook,
    SESSION_TAG_SECRET: secrets.tag,
    CLOCK_SKEW_MS: '0',
    ...extra,
  };
}

/** What a suite needs beside the service: a cluster client, the session store on it, the queues. */
export function clusterSide(cluster: FailoverCluster, tagSecret: string) {
  const redis = cluster.client();
  const store = new SessionStore({ redis, prefix: CLUSTER_SESSION_PREFIX, tagSecret, clockSkewMs: 0 });
  return { redis, store, queues: openQueues(redis, CLUSTER_QUEUE_PREFIX) };
}

/** A session for each user, issued an hour ago (so any revocation event of now refuses it). */
export function sessionsFromAnHourAgo(store: SessionStore, users: string[]): Promise<CreatedSession[]> {
  const issuedAt = Date.now() - 3_600_000;
  return inBatches(users, 200, (userId) => store.createSession({ userId, ttlSeconds: 3600, issuedAt }));
}
