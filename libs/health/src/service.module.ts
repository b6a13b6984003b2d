import { BullModule, getQueueToken } from '@nestjs/bullmq';
import { type DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import type { Queue } from 'bullmq';
import { type AppConfig, ConfigError, ConfigModule } from '#config';
import { RevokerMetrics } from '#metrics';
import {
  QUEUE_REDIS,
  type RedisClient,
  type RedisConnectionOptions,
  RedisModule,
  SESSION_REDIS,
} from '#redis';
import { ALL_QUEUES, AuditLog, QueueKeys } from '#revocation';
import { SessionStore } from '#session-store';
import { HEALTH_TARGETS, type HealthTargets } from './health-targets.js';
import { HealthController } from './health.controller.js';
import { connectMetricSources } from './metrics-sources.js';
import { MetricsController } from './metrics.controller.js';
import { queueErrorLogs } from './queue-error-logs.js';

export interface ServiceOptions {
  /** The metrics registry; both apps of one process share one. */
  metrics?: RevokerMetrics;
  /**
   * This process's queue Redis client options (a gateway fails fast, a worker waits out reconnects).
   * Without them the process has no queue Redis, no BullMQ and no audit trail: the edge, which
   * reads sessions and tokens only, runs so on its own.
   */
  queueRedis?: Omit<RedisConnectionOptions, 'role'>;
  /** This process's session Redis client options. */
  sessionRedis: Omit<RedisConnectionOptions, 'role'>;
  /** Whether the process cannot run without the session store (the worker) or reads it when it can. */
  sessionStore: 'required' | 'optional';
}

/**
 * What every app of the service stands on: the configuration, both Redis connections, BullMQ and its
 * queues (sharing the queue Redis client), our keys on the queue Redis and the audit trail there, the
 * session store, and /health and /metrics on them. Global: the feature modules an app imports (the
 * edge) inject the session store without importing this again.
 */
@Module({})
export class ServiceModule {
  static forRoot(config: AppConfig, options: ServiceOptions): DynamicModule {
    const metrics = options.metrics ?? new RevokerMetrics();
    const sessionRedis = RedisModule.forRole({ role: 'sessions', ...options.sessionRedis });
    const queue: ModuleParts = options.queueRedis
      ? queueParts(config, options.queueRedis, metrics)
      : {
          imports: [],
          providers: [
            {
              provide: HEALTH_TARGETS,
              inject: [SESSION_REDIS],
              useFactory: (redis: RedisClient | null): HealthTargets => ({ sessions: redis, queues: [] }),
            },
          ],
          exports: [],
        };
    return {
      global: true,
      module: ServiceModule,
      imports: [
        ConfigModule.forRoot(config),
        ...queue.imports,
        sessionRedis,
        TerminusModule.forRoot({ logger: false }),
      ],
      controllers: [HealthController, MetricsController],
      providers: [
        { provide: RevokerMetrics, useValue: metrics },
        {
          provide: SessionStore,
          inject: [SESSION_REDIS],
          useFactory: (redis: RedisClient | null) => sessionStoreFor(config, redis, options.sessionStore),
        },
        ...queue.providers,
      ],
      exports: [RevokerMetrics, SessionStore, sessionRedis, ...queue.exports],
    };
  }
}

/** What a part of the service module adds to it. */
type ModuleParts = Required<Pick<DynamicModule, 'imports' | 'providers' | 'exports'>>;

/** The queue Redis, BullMQ and its queues, our keys and the audit trail there, and readiness on them. */
function queueParts(
  config: AppConfig,
  queueOptions: NonNullable<ServiceOptions['queueRedis']>,
  metrics: RevokerMetrics,
): ModuleParts {
  const queueRedis = RedisModule.forRole({ role: 'queue', ...queueOptions });
  const queues = BullModule.registerQueue(...ALL_QUEUES.map((name) => ({ name })));
  const keys = new QueueKeys(config.redis.queuePrefix);
  return {
    imports: [
      queueRedis,
      BullModule.forRootAsync({
        imports: [queueRedis],
        inject: [QUEUE_REDIS],
        useFactory: (redis: RedisClient) => ({ connection: redis, prefix: config.redis.queuePrefix }),
      }),
      queues,
    ],
    providers: [
      { provide: QueueKeys, useValue: keys },
      {
        provide: AuditLog,
        inject: [QUEUE_REDIS],
        useFactory: (redis: RedisClient) => new AuditLog(redis, keys.audit, config.auditMaxEntries),
      },
      {
        provide: HEALTH_TARGETS,
        inject: [QUEUE_REDIS, SESSION_REDIS, ...ALL_QUEUES.map((q) => getQueueToken(q))],
        useFactory: (queue: RedisClient, sessions: RedisClient | null, ...all: Queue[]) => {
          const targets = { queue, sessions, keys, queues: all };
          connectMetricSources(metrics, targets);
          return targets;
        },
      },
      queueErrorLogs(QUEUE_REDIS),
    ],
    exports: [QueueKeys, AuditLog, queueRedis, queues],
  };
}

/** The session store the applications write to, or null for a process that can do without it. */
function sessionStoreFor(
  config: AppConfig,
  redis: RedisClient | null,
  need: ServiceOptions['sessionStore'],
): SessionStore | null {
  const tagSecret = config.session.tagSecret;
  if (!redis || !tagSecret) {
    if (need === 'optional') return null;
    throw new ConfigError(
      'SESSION_TAG_SECRET: required by this process (the same secret the applications use)',
    );
  }
  return new SessionStore({
    redis,
    prefix: config.redis.sessionPrefix,
    tagSecret,
    clockSkewMs: config.session.clockSkewMs,
  });
}
