import { Body, Controller, Headers, HttpCode, Inject, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';
import {
  EventRejectedError,
  JwtVerifier,
  parseLogoutToken,
  parseSecurityEventToken,
  TemporaryFailureError,
} from '#identity-events';
import { RedisUnavailableException, RETRY_AFTER_SECONDS } from '../redis-unavailable.js';
import { IngestService } from './ingest.service.js';

const bodyText = (body: unknown) => (Buffer.isBuffer(body) ? body.toString('utf8') : '');
const mediaType = (contentType: string | undefined) =>
  (contentType ?? '').split(';')[0]!.trim().toLowerCase();

/** A failure we could not judge now (issuer keys unreachable): 503 so the sender retries. */
function sendTemporaryFailure(reply: FastifyReply): void {
  void reply
    .status(503)
    .header('Retry-After', String(RETRY_AFTER_SECONDS))
    .header('Cache-Control', 'no-store');
}

/**
 * Token-age and skew limits of every JWT source, from config. A token is accepted until its `iat` plus
 * the maximum age plus the skew, and its jti's dedup mark lives the dedup window from its first
 * arrival, which may be a skew before its `iat`: so the maximum age is the window less twice the skew,
 * and no replay is accepted after its mark is gone.
 */
const verifyOptions = (config: AppConfig, receivedAt: number) => ({
  clockToleranceSec: config.jwtClockToleranceSec,
  maxTokenAgeSec: config.dedupWindowMs / 1000 - 2 * config.jwtClockToleranceSec,
  receivedAt,
});

/**
 * What a JWT delivery's failure means for the sender: Redis could not store it (rethrown: the 503
 * filter answers), the issuer's keys are unreachable (503, retry), or the delivery is refused (400).
 */
function classify(
  err: unknown,
  fallback: string,
): { temporary: TemporaryFailureError } | { rejected: EventRejectedError } {
  if (err instanceof RedisUnavailableException) throw err;
  if (err instanceof TemporaryFailureError) return { temporary: err };
  return {
    rejected: err instanceof EventRejectedError ? err : new EventRejectedError('invalid_request', fallback),
  };
}

/** OpenID Connect Back-Channel Logout 1.0 receiver (PingFederate 11.3+, PingAM, any OP). */
@Controller('webhooks/oidc/backchannel-logout')
export class BackchannelLogoutController {
  private readonly verifier: JwtVerifier;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly ingest: IngestService,
  ) {
    this.verifier = new JwtVerifier(config.oidcIssuers);
  }

  /** 200 with Cache-Control: no-store when the logout is queued; 400 { error, error_description } otherwise. */
  @Post()
  @HttpCode(200)
  async receive(
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, string> | undefined> {
    void reply.header('Cache-Control', 'no-store');
    const receivedAt = Date.now();
    try {
      if (mediaType(contentType) !== 'application/x-www-form-urlencoded')
        throw new EventRejectedError('invalid_request', 'the body must be application/x-www-form-urlencoded');
      const token = new URLSearchParams(bodyText(body)).get('logout_token') ?? undefined;
      const command = await parseLogoutToken(token, this.verifier, verifyOptions(this.config, receivedAt));
      await this.ingest.accept([command], [], { receivedAt });
      return undefined;
    } catch (err) {
      const failure = classify(err, 'invalid logout token');
      if ('temporary' in failure) {
        sendTemporaryFailure(reply);
        return { error: 'temporarily_unavailable', error_description: failure.temporary.message };
      }
      this.ingest.count('oidc_bcl', 'backchannel-logout', 'rejected');
      void reply.status(400);
      return { error: 'invalid_request', error_description: failure.rejected.description };
    }
  }
}

/** Shared Signals push receiver (RFC 8935): one signed SET per request. */
@Controller('webhooks/ssf')
export class SsfController {
  private readonly verifier: JwtVerifier;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly ingest: IngestService,
  ) {
    this.verifier = new JwtVerifier(config.ssfTransmitters);
  }

  /** 202 with an empty body; 400 { err, description } with the RFC 8935 codes and Content-Language. */
  @Post()
  @HttpCode(202)
  async receive(
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, string> | undefined> {
    const receivedAt = Date.now();
    try {
      if (mediaType(contentType) !== 'application/secevent+jwt')
        throw new EventRejectedError('invalid_request', 'the body must be application/secevent+jwt');
      const { commands, ignored } = await parseSecurityEventToken(
        bodyText(body),
        this.verifier,
        verifyOptions(this.config, receivedAt),
      );
      for (const type of ignored) this.ingest.count('ssf', type, 'ignored');
      await this.ingest.accept(commands, [], { receivedAt });
      return undefined;
    } catch (err) {
      const failure = classify(err, 'invalid SET');
      void reply.header('Content-Language', 'en');
      if ('temporary' in failure) {
        sendTemporaryFailure(reply);
        return { err: 'invalid_key', description: failure.temporary.message };
      }
      this.ingest.count('ssf', 'unknown', 'rejected');
      void reply.status(400);
      return { err: failure.rejected.code, description: failure.rejected.description };
    }
  }
}
