import { Body, Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config';
import { parsePingOneBody } from '#identity-events';
import { IngestService } from '../enqueue/ingest.service.js';
import { PingOneAuthGuard } from './pingone-auth.guard.js';

export interface PingOneDeliveryResult {
  received: number;
  enqueued: number;
  duplicates: number;
  ignored: number;
  quarantined: number;
}

@Controller('webhooks/pingone')
export class PingOneWebhookController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly ingest: IngestService,
  ) {}

  /**
   * One PingOne delivery (PingOne sends up to 500 ACTIVITY events; any number within the body limit
   * is taken, as refusing a delivery stops PingOne's stream). 200 once every command and every quarantined
   * event is stored; 503 when Redis could not take them (PingOne retries); 401 before anything else
   * when the credentials are wrong.
   */
  @Post()
  @HttpCode(200)
  @UseGuards(PingOneAuthGuard)
  async receive(@Body() body: Buffer | undefined): Promise<PingOneDeliveryResult> {
    const receivedAt = Date.now();
    const parsed = parsePingOneBody(Buffer.isBuffer(body) ? body : undefined, {
      mapping: this.config.pingone.mapping,
      ...(this.config.pingone.environmentIds ? { environmentIds: this.config.pingone.environmentIds } : {}),
      receivedAt,
    });
    // One count per type, however many events a delivery ignores.
    const ignored = new Map<string, number>();
    for (const i of parsed.ignored)
      ignored.set(i.eventType ?? 'unknown', (ignored.get(i.eventType ?? 'unknown') ?? 0) + 1);
    for (const [type, n] of ignored) this.ingest.count('pingone', type, 'ignored', n);
    const quarantined = parsed.quarantined.map((q) => ({ ...q, source: 'pingone' }));
    const { enqueued, duplicates } = await this.ingest.accept(parsed.commands, quarantined, { receivedAt });
    return {
      received: parsed.received,
      enqueued: enqueued.length,
      duplicates: duplicates.length,
      ignored: parsed.ignored.length,
      quarantined: parsed.quarantinedEvents,
    };
  }
}
