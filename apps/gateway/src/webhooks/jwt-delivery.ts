import { Body, Headers, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { AppConfig } from '#config';
import {
  EventRejectedError,
  JwtVerifier,
  type JwtIssuer,
  type SetParseResult,
  TemporaryFailureError,
} from '#identity-events';
import type { IngestService } from '../enqueue/ingest.service.js';
import { RedisUnavailableException, RETRY_AFTER_SECONDS } from '../http/redis-unavailable.js';

/** Token-age and skew limits a JWT source verifies with, and when its delivery arrived. */
export interface JwtLimits {
  clockToleranceSec: number;
  maxTokenAgeSec: number;
  receivedAt: number;
}

/** What one JWT-carrying webhook route knows that the others do not. */
export interface JwtRoute {
  /** The source its commands and counts carry. */
  source: 'oidc_bcl' | 'ssf';
  /** The media type its body must have. */
  mediaType: string;
  /** The status of a queued delivery (a body-less answer). */
  acceptedStatus: 200 | 202;
  /** Headers every answer carries. */
  headers?: Record<string, string>;
  /** The event type a refused delivery is counted under. */
  rejectedType: string;
  /** What the refusal says when the failure is not one of ours (a bug, or an odd token). */
  fallback: string;
  /** The commands (and event types not acted on) that the body yields, once its token verifies. */
  parse(body: string, verifier: JwtVerifier, limits: JwtLimits): Promise<SetParseResult>;
  /** A refusal's body in the source's own error format. */
  errorBody(code: string, description: string): Record<string, string>;
  /** The error code of a delivery refused for now (503). */
  temporaryCode: string;
  /** The error code of a delivery refused for good (400). */
  rejectedCode(err: EventRejectedError): string;
  /** Headers every refusal carries. */
  refusalHeaders?: Record<string, string>;
}

/** How a delivery ended: queued, or refused for now (503, retry), or refused for good (400). */
export type JwtOutcome =
  { accepted: true } | { temporary: TemporaryFailureError } | { rejected: EventRejectedError };

const bodyText = (body: unknown) => (Buffer.isBuffer(body) ? body.toString('utf8') : '');
const mediaTypeOf = (contentType: string | undefined) =>
  (contentType ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * Receives the deliveries of one JWT source: checks the media type, verifies and parses the token
 * against the source's issuers, and queues its commands. A token is accepted until its `iat` plus
 * the maximum age plus the skew, and its jti's dedup mark lives the dedup window from its first
 * arrival, which may be a skew before its `iat`: so the maximum age is the window less twice the skew,
 * and no replay is accepted after its mark is gone. Redis unable to store it is rethrown (the 503
 * filter answers); the issuer's keys unreachable is temporary; anything else refuses the delivery.
 */
export class JwtDeliveryReceiver {
  private readonly verifier: JwtVerifier;

  constructor(
    private readonly route: JwtRoute,
    issuers: JwtIssuer[],
    private readonly config: AppConfig,
    private readonly ingest: IngestService,
  ) {
    this.verifier = new JwtVerifier(issuers);
  }

  /** Receives one delivery and answers it: the route's success status and no body, or its refusal. */
  async answer(
    body: unknown,
    contentType: string | undefined,
    reply: FastifyReply,
  ): Promise<Record<string, string> | undefined> {
    const { route } = this;
    for (const [name, value] of Object.entries(route.headers ?? {})) void reply.header(name, value);
    const outcome = await this.receive(body, contentType);
    if ('accepted' in outcome) {
      void reply.status(route.acceptedStatus);
      return undefined;
    }
    for (const [name, value] of Object.entries(route.refusalHeaders ?? {})) void reply.header(name, value);
    if ('temporary' in outcome) {
      answerTemporaryFailure(reply);
      return route.errorBody(route.temporaryCode, outcome.temporary.message);
    }
    void reply.status(400);
    return route.errorBody(route.rejectedCode(outcome.rejected), outcome.rejected.description);
  }

  async receive(body: unknown, contentType: string | undefined): Promise<JwtOutcome> {
    const { route, config } = this;
    const receivedAt = Date.now();
    try {
      if (mediaTypeOf(contentType) !== route.mediaType)
        throw new EventRejectedError('invalid_request', `the body must be ${route.mediaType}`);
      const { commands, ignored } = await route.parse(bodyText(body), this.verifier, {
        clockToleranceSec: config.jwtClockToleranceSec,
        maxTokenAgeSec: config.dedupWindowMs / 1000 - 2 * config.jwtClockToleranceSec,
        receivedAt,
      });
      for (const type of ignored) this.ingest.count(route.source, type, 'ignored');
      await this.ingest.accept(commands, [], { receivedAt });
      return { accepted: true };
    } catch (err) {
      if (err instanceof RedisUnavailableException) throw err;
      if (err instanceof TemporaryFailureError) return { temporary: err };
      this.ingest.count(route.source, route.rejectedType, 'rejected');
      return {
        rejected:
          err instanceof EventRejectedError ? err : new EventRejectedError('invalid_request', route.fallback),
      };
    }
  }
}

/** A failure we could not judge now (issuer keys unreachable): 503 so the sender retries. */
function answerTemporaryFailure(reply: FastifyReply): void {
  void reply
    .status(503)
    .header('Retry-After', String(RETRY_AFTER_SECONDS))
    .header('Cache-Control', 'no-store');
}

/** What every JWT webhook serves: one POST, its body kept as bytes, answered by its receiver. */
export abstract class JwtWebhookController {
  protected abstract readonly receiver: JwtDeliveryReceiver;

  @Post()
  receive(
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, string> | undefined> {
    return this.receiver.answer(body, contentType, reply);
  }
}
