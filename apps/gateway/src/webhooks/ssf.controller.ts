import { Controller, Inject } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config';
import { parseSecurityEventToken } from '#identity-events';
import { IngestService } from '../enqueue/ingest.service.js';
import { JwtDeliveryReceiver, JwtWebhookController } from './jwt-delivery.js';

/**
 * Shared Signals push receiver (RFC 8935), one signed SET per request: 202 with an empty body; 400
 * { err, description } with the RFC 8935 codes and Content-Language.
 */
@Controller('webhooks/ssf')
export class SsfController extends JwtWebhookController {
  protected readonly receiver: JwtDeliveryReceiver;

  constructor(@Inject(APP_CONFIG) config: AppConfig, ingest: IngestService) {
    super();
    this.receiver = new JwtDeliveryReceiver(
      {
        source: 'ssf',
        mediaType: 'application/secevent+jwt',
        acceptedStatus: 202,
        rejectedType: 'unknown',
        fallback: 'invalid SET',
        parse: (body, verifier, limits) => parseSecurityEventToken(body, verifier, limits),
        // RFC 8935's error format and codes; keys we could not fetch are invalid_key (retried).
        errorBody: (err, description) => ({ err, description }),
        temporaryCode: 'invalid_key',
        rejectedCode: (rejected) => rejected.code,
        refusalHeaders: { 'Content-Language': 'en' },
      },
      config.ssfTransmitters,
      config,
      ingest,
    );
  }
}
