import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RevokerMetrics } from '#metrics';

/** Prometheus scrape endpoint. It carries counts and timings only: no ids, tokens or secrets. */
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: RevokerMetrics) {}

  @Get()
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    await reply
      .header('Content-Type', this.metrics.registry.contentType)
      .header('Cache-Control', 'no-store')
      .send(await this.metrics.registry.metrics());
  }
}
