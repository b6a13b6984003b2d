import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';
import { secretHash } from './keys.js';
import type { StoreCore } from './store-core.js';
import { checkClaims, checkGroups, checkId, checkInstant, checkToken } from './validation.js';

/** A token as the cache knows it: only its hash, computed once per verification. */
export interface TokenRef {
  readonly hash: string;
}

/** Checks a token (a non-empty string of bounded length) and hashes it; the token itself goes nowhere. */
export function tokenRef(token: unknown): TokenRef {
  return { hash: secretHash(checkToken(token)) };
}

export interface CachedToken {
  userId: string;
  issuedAt: number;
  expiresAt: number;
  claims: Record<string, unknown>;
}

export interface CacheTokenInput {
  userId: string;
  /** When the token expires (epoch ms): the record never outlives it. */
  expiresAt: number;
  /** Keep the record no longer than this (epoch ms), when sooner than `expiresAt`. */
  cacheUntil?: number;
  /** When the token was issued (epoch ms); default: the `iat` claim (seconds), else now by Redis. */
  issuedAt?: number;
  /** The IdP session it belongs to (`sid`), so a back-channel logout of that session reaches it. */
  idpSessionId?: string;
  /** Groups or roles, so a group-wide revocation finds its user. */
  groups?: string[];
  /** The few claims callers need back on a hit (small JSON). */
  claims?: Record<string, unknown>;
}

export type TokenLookup =
  | { state: 'hit'; token: CachedToken }
  /** Cached, but a not-before stamp (user or IdP session) now refuses it. */
  | { state: 'revoked' }
  /** Not cached; `failed` is the reason it was remembered as failed, if it was. */
  | { state: 'miss'; failed?: string };

const DEFAULT_TAGS_KEPT = 10_000;
const REASON = /^[a-z_]{1,64}$/;

/**
 * Validated tokens in the session Redis, for a verifier in front of them. A token's record lives in
 * its user's slot, so a read checks the user's and IdP session's not-before stamps in the same script:
 * one round trip, and a revocation is in force for tokens the moment its stamp is written, exactly as
 * for sessions. Which slot a token is in (its user's tag) comes from the caller's hint (the user the
 * token names), from this process's memory of earlier reads, or from a pointer key (one more round
 * trip). A token maps to one user forever, so that memory can never be wrong, only missing.
 */
export class TokenCache {
  /** Token hash -> user tag, oldest first; bounded. */
  private readonly tags = new Map<string, string>();
  private readonly tagsKept: number;

  constructor(
    private readonly core: StoreCore,
    options: { tagsKept?: number } = {},
  ) {
    this.tagsKept = Math.max(0, options.tagsKept ?? DEFAULT_TAGS_KEPT);
  }

  /** Whether this process remembers where the token's record lives (a read then needs no hint). */
  remembers(ref: TokenRef): boolean {
    return this.tags.has(ref.hash);
  }

  /** The user tag a token's record would live under: the routing part of the cache, no secret. */
  tagOf(userId: string): string {
    return this.core.keys.userTag(userId);
  }

  /**
   * Caches a verified token, unless a not-before stamp of its user, IdP session or groups already
   * covers it (SessionRevokedError: a token issued before a revocation is refused even if it verifies).
   */
  async write(ref: TokenRef, input: CacheTokenInput): Promise<{ issuedAt: number; expiresAt: number }> {
    const userId = checkId(input?.userId, 'userId');
    const expiresAt = checkInstant(input.expiresAt, 'expiresAt');
    const cacheUntil = Math.min(
      expiresAt,
      input.cacheUntil === undefined ? Infinity : checkInstant(input.cacheUntil, 'cacheUntil'),
    );
    if (cacheUntil <= Date.now()) throw new InvalidArgumentError('expiresAt is already past');
    const claims = checkClaims(input.claims);
    const groups = checkGroups(input.groups);
    const idpSessionId =
      input.idpSessionId === undefined ? undefined : checkId(input.idpSessionId, 'idpSessionId');
    const iatClaim = input.claims?.['iat'];
    const issuedAt =
      input.issuedAt !== undefined
        ? checkInstant(input.issuedAt, 'issuedAt')
        : typeof iatClaim === 'number' && Number.isFinite(iatClaim) && iatClaim >= 0
          ? Math.floor(iatClaim * 1000)
          : undefined;
    const { keys, scripts } = this.core;
    const tag = keys.userTag(userId);
    const idpHash = idpSessionId === undefined ? '' : secretHash(idpSessionId);
    const outside = await this.core.indexOutside(
      idpHash ? { hash: idpHash, member: keys.idpTokenMember(tag, ref.hash) } : undefined,
      groups,
      userId,
      cacheUntil,
    );
    const iat = (await this.core.mapErrors(
      scripts.cacheToken(
        keys.token(tag, ref.hash),
        keys.notBefore(tag),
        keys.userIndex(tag),
        keys.idpNotBefore(tag),
        userId,
        issuedAt ?? '',
        expiresAt,
        cacheUntil,
        idpHash,
        outside || '',
        claims,
        ref.hash,
      ),
    )) as string;
    // After the record: a pointer without its record is a miss, never a wrong answer.
    await this.core.redis.set(keys.tokenPointer(ref.hash), tag, 'PXAT', cacheUntil);
    this.remember(ref.hash, tag);
    return { issuedAt: Number(iat), expiresAt };
  }

  /**
   * The cached token, checked against its user's and IdP session's stamps. `userId` is a hint of the
   * user the token names (for a JWT, its unverified subject): with it, or with this process's memory,
   * a hit is one round trip; a wrong hint is only a miss.
   */
  async read(ref: TokenRef, hint: { userId?: string } = {}): Promise<TokenLookup> {
    let tag = this.tags.get(ref.hash);
    if (tag === undefined && hint.userId !== undefined && hint.userId.length > 0)
      tag = this.tagOf(hint.userId);
    if (tag !== undefined) {
      const found = await this.readAt(tag, ref);
      if (found) return found;
      return this.missOf(ref);
    }
    const [pointer, failed] = await Promise.all([
      this.core.redis.get(this.core.keys.tokenPointer(ref.hash)),
      this.core.redis.get(this.core.keys.tokenFailure(ref.hash)),
    ]);
    if (pointer) {
      const found = await this.readAt(pointer, ref);
      if (found) return found;
    }
    return failed ? { state: 'miss', failed } : { state: 'miss' };
  }

  /**
   * Remembers for `ttlMs` that the token failed (`reason`: lower-case word), unless `maxEntries`
   * failures are remembered already. True when remembered.
   */
  async rememberFailure(
    ref: TokenRef,
    reason: string,
    options: { ttlMs: number; maxEntries: number },
  ): Promise<boolean> {
    if (!REASON.test(reason)) throw new InvalidArgumentError('reason must be a lower-case word');
    if (!(options.ttlMs > 0) || !(options.maxEntries > 0)) return false;
    const { keys, scripts } = this.core;
    return (
      (await scripts.rememberFailure(
        keys.tokenFailures(),
        keys.tokenFailure(ref.hash),
        ref.hash,
        reason,
        Math.ceil(options.ttlMs),
        Math.floor(options.maxEntries),
      )) === 1
    );
  }

  /** How many failures are remembered now (the bound's own count). */
  async rememberedFailures(): Promise<number> {
    return this.core.redis.zcount(this.core.keys.tokenFailures(), `(${Date.now()}`, '+inf');
  }

  /**
   * Takes the lease on verifying this token for every process, for `leaseMs`. Returns the owner id to
   * pass to `releaseFlight`, or null when another caller holds it: then read the cache again shortly,
   * where the owner leaves its outcome (the token cached, or its failure remembered).
   */
  async claimFlight(ref: TokenRef, leaseMs: number): Promise<string | null> {
    const owner = randomBytes(9).toString('base64url');
    const ok = await this.core.redis.set(
      this.core.keys.tokenFlight(ref.hash),
      owner,
      'PX',
      Math.ceil(leaseMs),
      'NX',
    );
    return ok === 'OK' ? owner : null;
  }

  /** Ends a flight, if it is still this owner's (one that outlived its lease may have a new owner). */
  async releaseFlight(ref: TokenRef, owner: string): Promise<void> {
    await this.core.scripts.releaseFlight(this.core.keys.tokenFlight(ref.hash), owner);
  }

  private async readAt(tag: string, ref: TokenRef): Promise<TokenLookup | null> {
    const { keys, scripts } = this.core;
    const row = (await scripts.getToken(
      keys.token(tag, ref.hash),
      keys.notBefore(tag),
      keys.idpNotBefore(tag),
    )) as (string | null)[] | 0 | null;
    if (row === null) return null;
    this.remember(ref.hash, tag);
    if (row === 0) return { state: 'revoked' };
    const [userId, iat, exp, claims] = row;
    return {
      state: 'hit',
      token: {
        userId: userId!,
        issuedAt: Number(iat),
        expiresAt: Number(exp),
        claims: claims ? (JSON.parse(claims) as Record<string, unknown>) : {},
      },
    };
  }

  private async missOf(ref: TokenRef): Promise<TokenLookup> {
    const failed = await this.core.redis.get(this.core.keys.tokenFailure(ref.hash));
    return failed ? { state: 'miss', failed } : { state: 'miss' };
  }

  private remember(hash: string, tag: string): void {
    if (this.tagsKept === 0 || this.tags.has(hash)) return;
    if (this.tags.size >= this.tagsKept) this.tags.delete(this.tags.keys().next().value!);
    this.tags.set(hash, tag);
  }
}
