import { Controller, Inject } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config';
import { parseLogoutToken } from '#identity-events';
import { IngestService } from '../enqueue/ingest.service.js';
import { JwtDeliveryReceiver, JwtWebhookController } from './jwt-delivery.js';

/**
 * OpenID Connect Back-Channel Logout 1.0 receiver (PingFederate 11.3+, PingAM, any OP): 200 with
 * Cache-Control: no-store when the logout is queued; 400 { error, error_description } otherwise.
 */
@Controller('webhooks/oidc/backchannel-logout')
export class BackchannelLogoutController extends JwtWebhookController {
  protected readonly receiver: JwtDeliveryReceiver;

  constructor(@Inject(APP_CONFIG) config: AppConfig, ingest: IngestService) {
    super();
    this.receiver = new JwtDeliveryReceiver(
      {
        source: 'oidc_bcl',
        mediaType: 'application/x-www-form-urlencoded',
        acceptedStatus: 200,
        headers: { 'Cache-Control': 'no-store' },
        rejectedType: 'backchannel-logout',
        fallback: 'invalid logout token',
        // A form whose logout_token field holds the token: one command.
        parse: async (body, verifier, limits) => ({
          commands: [
            await parseLogoutToken(
              new URLSearchParams(body).get('logout_token') ?? undefined,
              verifier,
              limits,
            ),
          ],
          ignored: [],
        }),
        // OIDC's error format (RFC 6749 5.2): every refusal is invalid_request.
        errorBody: (error, description) => ({ error, error_description: description }),
        temporaryCode: 'temporarily_unavailable',
        rejectedCode: () => 'invalid_request',
      },
      config.oidcIssuers,
      config,
      ingest,
    );
  }
}
