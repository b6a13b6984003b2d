import { Controller, Get, Header, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import type { RedisClient } from '#redis';
import type { MemoryReading } from '#metrics';
import { HEALTH_TARGETS, type HealthTargets } from './health-targets.js';

const PING_TIMEOUT_MS = 1000;

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Liveness: the process answers. Readiness: each Redis role this process uses answers a PING within a
 * second, its queues are reachable, and the last memory-watch reading is under the threshold (else
 * "degraded").
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    @Inject(HEALTH_TARGETS) private readonly targets: HealthTargets,
  ) {}

  @Get('live')
  @Header('Cache-Control', 'no-store')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    const { sessions, queue, queues } = this.targets;
    return this.health.check([
      ...(sessions ? [() => this.ping('redis_sessions', sessions)] : []),
      ...(queue ? [() => this.ping('redis_queue', queue)] : []),
      ...(queues.length ? [() => this.queues(queues)] : []),
      async () => {
        const check = this.indicators.check('memory');
        const readings = await this.memory();
        const degraded = readings.filter((r) => r.degraded).map((r) => r.role);
        return degraded.length ? check.degraded({ over: degraded }) : check.up({ readings: readings.length });
      },
    ]);
  }

  private async queues(queues: HealthTargets['queues']) {
    const check = this.indicators.check('queues');
    try {
      await withTimeout(Promise.all(queues.map((q) => q.getJobCounts('waiting'))), PING_TIMEOUT_MS);
      return check.up({ queues: queues.map((q) => q.name) });
    } catch (err) {
      return check.down({ message: (err as Error).message });
    }
  }

  private async ping(key: string, redis: RedisClient) {
    const check = this.indicators.check(key);
    try {
      await withTimeout(redis.ping(), PING_TIMEOUT_MS);
      return check.up();
    } catch (err) {
      return check.down({ message: (err as Error).message });
    }
  }

  private async memory(): Promise<MemoryReading[]> {
    const { queue, keys } = this.targets;
    if (!queue || !keys) return [];
    try {
      const raw = await withTimeout(queue.get(keys.memory), PING_TIMEOUT_MS);
      return raw ? (JSON.parse(raw) as MemoryReading[]) : [];
    } catch {
      return [];
    }
  }
}
