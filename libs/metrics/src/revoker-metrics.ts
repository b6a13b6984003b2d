import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
