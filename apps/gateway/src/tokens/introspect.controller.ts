import {
  BadRequestException,
  Controller,
  Header,
  HttpCode,
  Post,
  Req,
  Res,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TokenVerifier, TokenVerifierUnavailableError, type VerifyResult } from '#token-verifier';
import { RETRY_AFTER_SECONDS } from '../http/redis-unavailable.js';
import { IntrospectionAuth } from './introspection-auth.js';

/** The members of an active answer, in RFC 7662's order, taken from the token's kept claims. */
const MEMBERS = [
  'scope',
  'client_id',
  'username',
  'token_type',
  'exp',
  'iat',
  'nbf',
  'sub',
  'aud',
  'iss',
  'sid',
] as const;

/**
 * RFC 7662 token introspection for resource servers and gateways (Kong, mod_auth_openidc, Envoy or
 * NGINX scripts): `{"active": false}` for anything invalid, expired or revoked (the RFC gives no
 * reason), else `active: true` with the token's claims. Answered from the token cache, which every
 * revocation reaches at once.
 */
@Controller('oauth2/introspect')
export class IntrospectController {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly auth: IntrospectionAuth,
  ) {}

  @Post()
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  async introspect(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Record<string, unknown>> {
    if ((await this.auth.callerOf(request)) === null) {
      void reply.header('WWW-Authenticate', 'Basic realm="session-revoker", charset="UTF-8"');
      throw new UnauthorizedException({
        error: 'invalid_client',
        error_description:
          'introspection needs client credentials (HTTP Basic) or an admin key with tokens:introspect',
      });
    }
    const type = String(request.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/x-www-form-urlencoded')
      throw new BadRequestException({
        error: 'invalid_request',
        error_description: 'the body must be application/x-www-form-urlencoded',
      });
    const form = new URLSearchParams(Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '');
    const tokens = form.getAll('token');
    if (tokens.length !== 1 || tokens[0] === '')
      throw new BadRequestException({
        error: 'invalid_request',
        error_description: 'give exactly one token',
      });
    let result: VerifyResult;
    try {
      result = await this.verifier.verify(tokens[0]);
    } catch (err) {
      if (!(err instanceof TokenVerifierUnavailableError)) throw err;
      void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
      throw new ServiceUnavailableException({
        error: 'temporarily_unavailable',
        error_description:
          err.dependency === 'redis'
            ? 'the token cache is unavailable; retry later'
            : 'the token issuer is unavailable; retry later',
      });
    }
    if (!result.active) return { active: false };
    const answer: Record<string, unknown> = { active: true };
    const claims = result.claims as Record<string, unknown>;
    for (const member of MEMBERS) if (claims[member] !== undefined) answer[member] = claims[member];
    answer['sub'] ??= result.userId;
    answer['token_type'] ??= 'Bearer';
    return answer;
  }
}
