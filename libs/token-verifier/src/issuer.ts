import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { TokenVerifierUnavailableError } from './errors.js';

/** Asymmetric algorithms only: never `none`, never an HMAC that a public key could be abused for. */
export const ASYMMETRIC_ALGORITHMS = [
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

export interface IntrospectionClient {
  /** RFC 7662 endpoint: PingOne `{authPath}/{envID}/as/introspect`, PingFederate `/as/introspect.oauth2`. */
  uri: string;
  clientId: string;
  clientSecret: string;
  /** Give up on the call after this long (then the verification fails as unavailable). Default 3000. */
  timeoutMs?: number;
  /**
   * Accept answers without `iat`, taking the first verification's instant instead. Off by default:
   * without `iat`, a token issued before its user's revocation but first seen after it looks new, so
   * only the IdP's own answer can refuse it.
   */
  allowMissingIat?: boolean;
}

export interface TokenIssuerConfig {
  /** The `iss` its tokens carry. */
  issuer: string;
  /** The audience tokens must be for (any one of them), when set. */
  audience?: string | string[];
  /** Remote JWKS (fetched, cached, fetched again on an unknown `kid`) ... */
  jwksUri?: string;
  /** ... or a static one. Without either, the issuer's tokens are only introspected. */
  jwks?: JSONWebKeySet;
  /** Allowed JWS algorithms; default every asymmetric one. HMAC and `none` are never allowed. */
  algorithms?: string[];
  /** Require the `typ` header `at+jwt` (RFC 9068). Default false. */
  requireAtJwtTyp?: boolean;
  /** For opaque (reference) tokens, and this issuer's JWTs when it has no keys. */
  introspection?: IntrospectionClient;
  /**
   * Whether opaque tokens are introspected here. An opaque token names no issuer, and a bearer token
   * sent to an IdP that did not issue it is disclosed to that IdP: each goes to exactly one issuer.
   * Default: true for the only issuer with `introspection`; with several, set it on one of them (or
   * `false` on all but one). JWTs always go to the issuer their `iss` names.
   */
  opaqueTokens?: boolean;
  /** The claim naming the user, as the session store knows them. Default `sub`. */
  userClaim?: string;
  /** The claim holding the user's groups or roles (array of strings), for group-wide revocation. */
  groupsClaim?: string;
}

/** Why a token is not active. RFC 7662 gives the caller none of this; logs and metrics do. */
export type InactiveReason =
  'malformed' | 'unknown_issuer' | 'invalid' | 'expired' | 'inactive' | 'no_subject' | 'revoked';

/** A token the issuer vouches for: who, until when, and the few claims callers need. */
export interface Vouched {
  userId: string;
  /** Epoch ms, or undefined when the issuer gave none (then the cache's maximum bounds it). */
  expiresAt?: number;
  /** Epoch ms, when the token says. */
  issuedAt?: number;
  idpSessionId?: string;
  groups: string[];
  claims: TokenClaims;
}

/** What is kept of a token's claims: RFC 7662's members and the usual identity ones. */
export interface TokenClaims {
  sub?: string;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  iat?: number;
  nbf?: number;
  scope?: string;
  client_id?: string;
  sid?: string;
  username?: string;
  token_type?: string;
  email?: string;
  preferred_username?: string;
  groups?: string[];
}

const KEPT_STRINGS = [
  'sub',
  'iss',
  'scope',
  'client_id',
  'sid',
  'username',
  'token_type',
  'email',
  'preferred_username',
];
const KEPT_NUMBERS = ['exp', 'iat', 'nbf'];
const MAX_CLAIM_CHARS = 1024;
const MAX_AUDIENCES = 8;
/** Below the session store's 16 KiB of claims per record (the kept strings and audiences fit in ~12 KiB). */
const MAX_KEPT_CLAIMS_CHARS = 14_000;
const MAX_GROUPS = 256;

/**
 * The one issuer opaque tokens are introspected at, or undefined when none takes them (they are then
 * `unknown_issuer`). TypeError for a configuration that leaves the choice open or makes it twice.
 */
export function opaqueTokenIssuer<
  T extends Pick<TokenIssuerConfig, 'issuer' | 'introspection' | 'opaqueTokens'>,
>(issuers: readonly T[]): T | undefined {
  for (const i of issuers)
    if (i.opaqueTokens === true && !i.introspection)
      throw new TypeError(`issuer ${i.issuer}: opaqueTokens needs introspection`);
  const chosen = issuers.filter((i) => i.opaqueTokens === true);
  if (chosen.length > 1)
    throw new TypeError(
      `opaqueTokens is set on issuers ${names(chosen)}: an opaque token goes to exactly one issuer, set it on one`,
    );
  if (chosen.length === 1) return chosen[0];
  const open = issuers.filter((i) => i.introspection && i.opaqueTokens !== false);
  if (open.length > 1)
    throw new TypeError(
      `issuers ${names(open)} introspect: set opaqueTokens: true on the one whose opaque tokens are ` +
        'verified here (an opaque token names no issuer, and is sent to exactly one)',
    );
  return open[0];
}

const names = (issuers: readonly { issuer: string }[]) => issuers.map((i) => i.issuer).join(', ');

export class Failed {
  constructor(readonly reason: InactiveReason) {}
}

/** One configured issuer: verifies its JWTs with jose and introspects its opaque tokens. */
export class Issuer {
  readonly userClaim: string;
  private readonly keys?: JWTVerifyGetKey;
  private readonly algorithms: string[];
  private readonly audiences?: string[];

  constructor(
    readonly config: TokenIssuerConfig,
    private readonly clockToleranceSeconds: number,
  ) {
    this.userClaim = config.userClaim ?? 'sub';
    const refused = (config.algorithms ?? []).filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
    if (refused.length)
      throw new TypeError(
        `issuer ${config.issuer}: algorithms ${refused.join(', ')} are not allowed (asymmetric only)`,
      );
    this.algorithms = config.algorithms ?? ASYMMETRIC_ALGORITHMS;
    if (config.audience !== undefined) this.audiences = ([] as string[]).concat(config.audience);
    if (config.jwks) this.keys = createLocalJWKSet(config.jwks);
    else if (config.jwksUri)
      this.keys = createRemoteJWKSet(new URL(config.jwksUri), {
        cooldownDuration: 30_000,
        cacheMaxAge: 600_000,
        timeoutDuration: 5000,
      });
  }

  get verifiesJwts(): boolean {
    return this.keys !== undefined;
  }

  get introspects(): boolean {
    return this.config.introspection !== undefined;
  }

  /** Verifies a JWT access token with the issuer's keys. Failed for a bad token; throws when keys are out of reach. */
  async verifyJwt(token: string): Promise<Vouched | Failed> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys!, {
        issuer: this.config.issuer,
        ...(this.audiences ? { audience: this.audiences } : {}),
        algorithms: this.algorithms,
        clockTolerance: this.clockToleranceSeconds,
        ...(this.config.requireAtJwtTyp ? { typ: 'at+jwt' } : {}),
        // RFC 9068 makes iat required: without it a revocation could not tell whether it came before.
        requiredClaims: ['exp', 'iat', this.userClaim],
      }));
    } catch (err) {
      if (keysOutOfReach(err))
        throw new TokenVerifierUnavailableError('idp', "the issuer's keys could not be fetched");
      return new Failed(err instanceof errors.JWTExpired ? 'expired' : 'invalid');
    }
    return this.vouched(payload);
  }

  /** Asks the issuer (RFC 7662). Failed when it says inactive; throws when it cannot be asked. */
  async introspect(token: string): Promise<Vouched | Failed> {
    const client = this.config.introspection!;
    let answer: unknown;
    try {
      const basic = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
      const response = await fetch(client.uri, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(basic).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        signal: AbortSignal.timeout(client.timeoutMs ?? 3000),
        // A redirect would carry the token to another address.
        redirect: 'error',
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`status ${response.status}`);
      }
      answer = await response.json();
    } catch (err) {
      throw new TokenVerifierUnavailableError(
        'idp',
        `the issuer's introspection endpoint could not be used (${describe(err)})`,
      );
    }
    if (!isObject(answer) || answer['active'] !== true) return new Failed('inactive');
    // Only access tokens authorise requests (an IdP may answer for a refresh token as well).
    if (typeof answer['token_type'] === 'string' && /refresh/i.test(answer['token_type']))
      return new Failed('invalid');
    if (typeof answer['iat'] !== 'number' && !client.allowMissingIat) return new Failed('invalid');
    if (answer['iss'] !== undefined && answer['iss'] !== this.config.issuer) return new Failed('invalid');
    if (this.audiences && !this.audiences.some((a) => ([] as unknown[]).concat(answer['aud']).includes(a)))
      return new Failed('invalid');
    const now = Date.now() / 1000;
    if (typeof answer['exp'] === 'number' && answer['exp'] + this.clockToleranceSeconds <= now)
      return new Failed('expired');
    if (typeof answer['nbf'] === 'number' && answer['nbf'] - this.clockToleranceSeconds > now)
      return new Failed('invalid');
    return this.vouched({ iss: this.config.issuer, ...answer } as JWTPayload);
  }

  private vouched(payload: JWTPayload): Vouched | Failed {
    const userId = payload[this.userClaim];
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256)
      return new Failed('no_subject');
    const claims = keptClaims(payload, this.config.groupsClaim);
    // A token "issued" later than now is a clock ahead, or a forgery's way past a revocation.
    if (claims.iat !== undefined && claims.iat - this.clockToleranceSeconds > Date.now() / 1000)
      return new Failed('invalid');
    const groups = claims.groups ?? [];
    // The record keeps at most 16 KiB of claims: groups (indexed apart) are the first to go from them.
    if (JSON.stringify(claims).length > MAX_KEPT_CLAIMS_CHARS) delete claims.groups;
    const vouched: Vouched = { userId, groups, claims };
    if (claims.exp !== undefined) vouched.expiresAt = claims.exp * 1000;
    if (claims.iat !== undefined) vouched.issuedAt = claims.iat * 1000;
    if (claims.sid !== undefined && claims.sid.length <= 256) vouched.idpSessionId = claims.sid;
    return vouched;
  }
}

/** The claims worth keeping, each checked for its type and bounded in size. */
export function keptClaims(payload: Record<string, unknown>, groupsClaim?: string): TokenClaims {
  const out: Record<string, unknown> = {};
  for (const name of KEPT_STRINGS) {
    const v = payload[name];
    if (typeof v === 'string' && v.length <= MAX_CLAIM_CHARS) out[name] = v;
  }
  for (const name of KEPT_NUMBERS) {
    const v = payload[name];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[name] = v;
  }
  const aud = payload['aud'];
  if (typeof aud === 'string' && aud.length <= MAX_CLAIM_CHARS) out['aud'] = aud;
  else if (Array.isArray(aud)) {
    const list = aud
      .filter((a): a is string => typeof a === 'string' && a.length <= MAX_CLAIM_CHARS)
      .slice(0, MAX_AUDIENCES);
    if (list.length) out['aud'] = list;
  }
  if (groupsClaim) {
    const g = payload[groupsClaim];
    if (Array.isArray(g)) {
      const groups = g.filter((x): x is string => typeof x === 'string' && x.length > 0 && x.length <= 256);
      out['groups'] = [...new Set(groups)].slice(0, MAX_GROUPS);
    }
  }
  return out as TokenClaims;
}

/** jose could not get the issuer's keys (network, timeout, not 200): not the token's fault. */
function keysOutOfReach(err: unknown): boolean {
  return (
    err instanceof errors.JWKSTimeout ||
    !(err instanceof errors.JOSEError) ||
    (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set HTTP response/.test(err.message))
  );
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** An error's kind without its message's details (a URL, never a token). */
function describe(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'timed out';
    if (/^status \d+$/.test(err.message)) return err.message;
    return err.name;
  }
  return 'unknown error';
}
