import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { EventRejectedError, TemporaryFailureError } from './event-rejected.error.js';

/** Asymmetric algorithms only: never `none`, never an HMAC that a public key could be abused for. */
export const DEFAULT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

export interface JwtIssuer {
  issuer: string;
  audience: string | string[];
  /** Remote JWKS (fetched, cached, refreshed on an unknown kid) ... */
  jwksUri?: string;
  /** ... or a static one, for offline use. */
  jwks?: JSONWebKeySet;
  algorithms?: string[];
}

export interface VerifyOptions {
  clockToleranceSec: number;
  /** Tokens older than this (by `iat`) are refused, so a replay outside the dedup window cannot act. */
  maxTokenAgeSec: number;
  requiredClaims: string[];
  /** Accepted `typ` header value(s) when present (compared case-insensitively, `application/` optional). */
  typ: string | string[];
}

export interface VerifiedJwt {
  payload: JWTPayload;
  issuer: JwtIssuer;
}

/** Verifies JWTs from a fixed set of issuers, each against its own keys, with jose. */
export class JwtVerifier {
  private readonly keys = new Map<string, { issuer: JwtIssuer; getKey: JWTVerifyGetKey }>();

  constructor(issuers: JwtIssuer[]) {
    for (const issuer of issuers) {
      const getKey = issuer.jwks
        ? createLocalJWKSet(issuer.jwks)
        : createRemoteJWKSet(new URL(issuer.jwksUri!), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      this.keys.set(issuer.issuer, { issuer, getKey });
    }
  }

  get size(): number {
    return this.keys.size;
  }

  async verify(token: string, options: VerifyOptions): Promise<VerifiedJwt> {
    let iss: unknown;
    let typ: unknown;
    try {
      typ = decodeProtectedHeader(token).typ;
      iss = decodeJwt(token).iss;
    } catch {
      throw new EventRejectedError('invalid_request', 'the token is not a well-formed JWT');
    }
    const accepted = ([] as string[]).concat(options.typ);
    if (typ !== undefined && (typeof typ !== 'string' || !accepted.includes(normaliseTyp(typ))))
      throw new EventRejectedError(
        'invalid_request',
        `the token's typ header is not ${accepted.join(' or ')}`,
      );
    const entry = typeof iss === 'string' ? this.keys.get(iss) : undefined;
    if (!entry) throw new EventRejectedError('invalid_issuer', 'the token is from an unknown issuer');
    try {
      const { payload } = await jwtVerify(token, entry.getKey, {
        issuer: entry.issuer.issuer,
        audience: entry.issuer.audience,
        algorithms: entry.issuer.algorithms ?? DEFAULT_ALGORITHMS,
        clockTolerance: options.clockToleranceSec,
        maxTokenAge: options.maxTokenAgeSec,
        requiredClaims: options.requiredClaims,
      });
      // Ids built from these claims must be what they claim to be: an object jti would stringify
      // to "[object Object]" and make two logouts one.
      for (const claim of ['jti', 'sub', 'sid'])
        if (claim in payload && (typeof payload[claim] !== 'string' || payload[claim] === ''))
          throw new EventRejectedError(
            'invalid_request',
            `the token's ${claim} claim must be a non-empty string`,
          );
      return { payload, issuer: entry.issuer };
    } catch (err) {
      throw toRejection(err);
    }
  }
}

const normaliseTyp = (typ: unknown) =>
  String(typ)
    .toLowerCase()
    .replace(/^application\//, '');

function toRejection(err: unknown): EventRejectedError | TemporaryFailureError {
  if (err instanceof EventRejectedError) return err;
  // The issuer's JWKS could not be fetched: retrying later can help, so this is not the sender's fault.
  // jose reports a JWKS endpoint answering anything but 200 with a generic JOSEError; an IdP that is
  // briefly down must get a retry (503), not a final 400 that drops its logout.
  if (
    err instanceof errors.JWKSTimeout ||
    !(err instanceof errors.JOSEError) ||
    (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set HTTP response/.test(err.message))
  )
    return new TemporaryFailureError("the issuer's keys could not be fetched");
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud')
      return new EventRejectedError('invalid_audience', 'the token is for another audience');
    if (err.claim === 'iss')
      return new EventRejectedError('invalid_issuer', 'the token is from an unknown issuer');
    return new EventRejectedError('invalid_request', `the token's ${err.claim} claim is missing or invalid`);
  }
  if (err instanceof errors.JWTExpired)
    return new EventRejectedError('invalid_request', 'the token has expired or is too old');
  if (err instanceof errors.JOSEAlgNotAllowed)
    return new EventRejectedError('invalid_key', 'the token is signed with an algorithm that is not allowed');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return new EventRejectedError('invalid_key', 'no key of the issuer matches the token');
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new EventRejectedError('invalid_key', 'the token signature does not verify');
  return new EventRejectedError('invalid_key', "the issuer's keys could not be used to verify the token");
}
