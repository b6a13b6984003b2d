import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The reasons an admin call is refused, the only values of `admin_auth_failures_total{reason}`. */
const ADMIN_AUTH_FAILURE_REASONS = ['missing_credentials', 'invalid_credentials', 'missing_scope'] as const;

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The service's Prometheus metrics, on a registry of its own (so tests and an embedded gateway+worker
 * process never register a metric twice). Names follow Prometheus conventions: base units, _total.
 */
export class RevokerMetrics {
  readonly registry = new Registry();

  readonly eventsReceived = new Counter({
    name: 'session_revoker_events_received_total',
    help: 'Events received, by source, event type and outcome (enqueued, duplicate, ignored, quarantined, rejected)',
    labelNames: ['source', 'type', 'outcome'] as const,
    registers: [this.registry],
  });

  /** The gateway's stamps of user revocations as it queues them (REVOKE_ON_RECEIPT). */
  readonly receiptStamps = new Counter({
    name: 'session_revoker_receipt_stamps_total',
    help: 'User revocations the gateway put in force as it queued them, by outcome (in_force; failed or late: left to the worker)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly jobs = new Counter({
    name: 'session_revoker_jobs_total',
    help: 'Revocation jobs finished, by outcome (completed, failed, retried)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly sessionsRevoked = new Counter({
    name: 'session_revoker_sessions_revoked_total',
    help: 'Sessions revoked, by target type',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });

  /** Refused admin API calls; a 401 is counted here (and logged) instead of audited. */
  readonly adminAuthFailures = new Counter({
    name: 'session_revoker_admin_auth_failures_total',
    help: 'Admin API calls refused, by reason: missing_credentials and invalid_credentials (401), missing_scope (403)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly tokenVerifications = new Counter({
    name: 'session_revoker_token_verifications_total',
    help: 'Token verifications, by source (cache, jwt, introspection, none) and outcome (active, an inactive reason, unavailable)',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly tokenIdpCalls = new Counter({
    name: 'session_revoker_token_idp_calls_total',
    help: 'Introspection calls to the IdP, by outcome (active, inactive, error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly tokenFlightWaits = new Counter({
    name: 'session_revoker_token_singleflight_waits_total',
    help: 'Verifications that waited for another caller verifying the same token (this process or another)',
    registers: [this.registry],
  });

  readonly tokenCacheLookups = new Counter({
    name: 'session_revoker_token_cache_lookups_total',
    help: 'Token cache reads, by result (hit, miss): the hit ratio is hit / all',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly tokenUncheckedJwts = new Counter({
    name: 'session_revoker_token_unchecked_jwts_total',
    help: 'JWTs accepted without the revocation check because Redis was out of reach (TOKEN_WHEN_REDIS_DOWN=verify-jwt-unchecked)',
    registers: [this.registry],
  });

  readonly eventToDone = new Histogram({
    name: 'session_revoker_event_to_done_seconds',
    help: "From the event's own time to the revocation being in force",
    labelNames: ['source'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly receivedToDone = new Histogram({
    name: 'session_revoker_received_to_done_seconds',
    help: 'From the gateway receiving the event to the revocation being in force',
    labelNames: ['source'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'session_revoker_http_request_duration_seconds',
    help: 'HTTP request durations, by method, route and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  /** Filled at scrape time by whoever owns the queues (see setQueueDepthSource). */
  readonly queueDepth = new Gauge({
    name: 'session_revoker_queue_jobs',
    help: 'Jobs in each queue, by state',
    labelNames: ['queue', 'state'] as const,
    registers: [this.registry],
    collect: async () => {
      if (!this.queueDepthSource) return;
      this.queueDepth.reset();
      for (const { queue, state, count } of await this.queueDepthSource().catch(() => []))
        this.queueDepth.set({ queue, state }, count);
    },
  });

  readonly quarantineSize = new Gauge({
    name: 'session_revoker_quarantine_entries',
    help: 'Deliveries kept in quarantine, waiting for inspection or replay',
    registers: [this.registry],
    collect: async () => {
      if (this.quarantineSource) this.quarantineSize.set(await this.quarantineSource().catch(() => 0));
    },
  });

  /** Filled at scrape time from the memory watch's last reading. */
  readonly redisMemory = new Gauge({
    name: 'session_revoker_redis_memory_bytes',
    help: 'Redis memory as read by the memory watch, by role (sessions, queue) and kind (used, max)',
    labelNames: ['role', 'kind'] as const,
    registers: [this.registry],
    collect: async () => {
      if (!this.memorySource) return;
      for (const r of await this.memorySource().catch(() => [])) {
        this.redisMemory.set({ role: r.role, kind: 'used' }, r.usedMemory);
        this.redisMemory.set({ role: r.role, kind: 'max' }, r.maxmemory);
        this.redisEvictedKeys.set({ role: r.role }, r.evictedKeys);
        this.redisOomErrors.set({ role: r.role }, r.oomErrors);
        this.redisFragmentation.set({ role: r.role }, r.fragmentationRatio);
      }
    },
  });

  readonly redisEvictedKeys = new Gauge({
    name: 'session_revoker_redis_evicted_keys',
    help: 'Keys Redis evicted since it started (INFO stats evicted_keys), by role',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });

  readonly redisOomErrors = new Gauge({
    name: 'session_revoker_redis_oom_errors',
    help: 'Commands Redis refused for want of memory since it started (INFO errorstats OOM), by role',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });

  readonly redisFragmentation = new Gauge({
    name: 'session_revoker_redis_fragmentation_ratio',
    help: 'Redis mem_fragmentation_ratio, by role',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });

  private queueDepthSource?: () => Promise<{ queue: string; state: string; count: number }[]>;
  private quarantineSource?: () => Promise<number>;
  private memorySource?: () => Promise<MemoryReading[]>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    for (const reason of ADMIN_AUTH_FAILURE_REASONS) this.adminAuthFailures.inc({ reason }, 0);
  }

  /** Where the scrape-time gauges read from (the process that owns the queues and Redis clients). */
  setSources(sources: {
    queueDepth?: () => Promise<{ queue: string; state: string; count: number }[]>;
    quarantine?: () => Promise<number>;
    memory?: () => Promise<MemoryReading[]>;
  }): void {
    if (sources.queueDepth) this.queueDepthSource = sources.queueDepth;
    if (sources.quarantine) this.quarantineSource = sources.quarantine;
    if (sources.memory) this.memorySource = sources.memory;
  }
}

/** One Redis role's memory, as the worker's memory watch reads it. */
export interface MemoryReading {
  role: 'sessions' | 'queue';
  usedMemory: number;
  maxmemory: number;
  policy: string;
  evictedKeys: number;
  fragmentationRatio: number;
  oomErrors: number;
  /** used / maxmemory over the configured fraction. */
  degraded: boolean;
  checkedAt: number;
}
