import { randomBytes } from 'node:crypto';
import { BoundedMemo } from './bounded-memo.js';
import { InvalidArgumentError } from './errors.js';
import { secretHash, TOKEN_FAILURE_BUCKETS } from './keys.js';
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
const NO_HINT: { userId?: string } = Object.freeze({});

/** Where a token's record lives: its user's tag and the three keys a read takes, built once. */
interface Place {
  readonly tag: string;
  readonly record: string;
  readonly notBefore: string;
  readonly idpNotBefore: string;
}
const REASON = /^[a-z_]{1,64}$/;

/**
 * Validated tokens in the session Redis, for a verifier in front of them. A token's record lives in
 * its user's slot, so a read checks the user's and IdP session's not-before stamps in the same script:
 * one round trip, and a revocation is in force for tokens the moment its stamp is written, exactly as
 * for sessions. Which slot a token is in (its user's tag) is first guessed from this process's memory
 * of earlier reads or from the caller's hint (the user the token names), and otherwise, or when the
 * guess finds nothing, read from the pointer key the write left (one more round trip). The pointer is
 * the authority: a guess only saves the round trip when it is right.
 */
export class TokenCache {
  /** Token hash -> where its record lives; bounded (the last `tagsKept` at least). */
  private readonly places: BoundedMemo<Place>;

  constructor(
    private readonly core: StoreCore,
    options: { tagsKept?: number } = {},
  ) {
    this.places = new BoundedMemo(Math.max(0, options.tagsKept ?? DEFAULT_TAGS_KEPT));
  }

  /** Whether this process remembers where the token's record lives (a read then needs no hint). */
  remembers(ref: TokenRef): boolean {
    return this.places.has(ref.hash);
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
    const place = this.placeOf(tag, ref.hash);
    const idpHash = idpSessionId === undefined ? '' : secretHash(idpSessionId);
    const outside = await this.core.indexOutside(
      idpHash ? { hash: idpHash, member: keys.idpTokenMember(tag, ref.hash) } : undefined,
      groups,
      userId,
      cacheUntil,
    );
    const iat = (await this.core.mapErrors(
      scripts.cacheToken(
        place.record,
        place.notBefore,
        keys.userIndex(tag),
        place.idpNotBefore,
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
    this.remember(ref.hash, place);
    return { issuedAt: Number(iat), expiresAt };
  }

  /**
   * The cached token, checked against its user's and IdP session's stamps. `userId` is a hint of the
   * user the token names (for a JWT, its unverified subject): with it, or with this process's memory,
   * a hit is one round trip. A guess that finds nothing falls back to the pointer, so a wrong or stale
   * one costs a round trip, never the entry; a forged one cannot reach another token's entry (the
   * record's key is the token's own hash).
   */
  read(ref: TokenRef, hint: { userId?: string } = NO_HINT): Promise<TokenLookup> {
    // A hit is the hot path of every verification: a promise chain, not nested async functions (each
    // level a promise and a turn more, about 1 µs of client CPU a hit), and the keys of a remembered
    // token built when it was remembered.
    // Its synchronous part (a client may throw rather than reject, e.g. a cluster with no node for the
    // slot) rejects, as an async function's would, so the verifier's Redis-down handling sees it.
    try {
      const known = this.places.get(ref.hash);
      if (known !== undefined) return this.readAt(known, ref, true);
      if (hint.userId !== undefined && hint.userId.length > 0)
        return this.readAt(this.placeOf(this.tagOf(hint.userId), ref.hash), ref, true);
      return this.readElsewhere(ref, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Where the write said the record is (unless that is `guess`, read already), and whether it failed. */
  private async readElsewhere(ref: TokenRef, guess: string | undefined): Promise<TokenLookup> {
    // One round trip. The hint can be wrong with the entry there: an introspected JWT whose own claim
    // names another user than the issuer's answer, or a process whose memory predates another write.
    const [pointer, failed] = await Promise.all([
      this.core.redis.get(this.core.keys.tokenPointer(ref.hash)),
      this.core.redis.get(this.core.keys.tokenFailure(ref.hash)),
    ]);
    if (pointer && pointer !== guess) {
      const found = await this.readAt(this.placeOf(pointer, ref.hash), ref, false);
      if (found) return found;
    }
    return failed ? { state: 'miss', failed } : { state: 'miss' };
  }

  /**
   * Remembers for `ttlMs` that the token failed (`reason`: lower-case word), unless `maxEntries`
   * failures are remembered already. True when remembered.
   *
   * The failures are spread over buckets (slots) by token hash, each bounded by its share of
   * `maxEntries` (the shares add up to it exactly), so garbage lands on every node of a cluster and
   * never more than `maxEntries` are kept. A bucket can be full while the total is not: the token is
   * then only not remembered, which costs a verification, never a wrong verdict.
   */
  async rememberFailure(
    ref: TokenRef,
    reason: string,
    options: { ttlMs: number; maxEntries: number },
  ): Promise<boolean> {
    if (!REASON.test(reason)) throw new InvalidArgumentError('reason must be a lower-case word');
    if (!(options.ttlMs > 0) || !(options.maxEntries > 0)) return false;
    const { keys, scripts } = this.core;
    const bucket = keys.tokenFailureBucket(ref.hash);
    const share = bucketShare(Math.floor(options.maxEntries), bucket, TOKEN_FAILURE_BUCKETS);
    if (share === 0) return false;
    return (
      (await scripts.rememberFailure(
        keys.tokenFailures(bucket),
        keys.tokenFailure(ref.hash),
        ref.hash,
        reason,
        Math.ceil(options.ttlMs),
        share,
      )) === 1
    );
  }

  /** How many failures are remembered now, over every bucket (the bound's own count). */
  async rememberedFailures(): Promise<number> {
    const live = `(${Date.now()}`;
    const counts = await Promise.all(
      this.core.keys.tokenFailureBuckets().map((key) => this.core.redis.zcount(key, live, '+inf')),
    );
    return counts.reduce((a, b) => a + b, 0);
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

  /**
   * The record at `place`, checked against the stamps there. Found nothing: with `orElsewhere`, what
   * the pointer says (readElsewhere, in the same `then`, so a hit costs one promise here), else null.
   */
  private readAt(place: Place, ref: TokenRef, orElsewhere: true): Promise<TokenLookup>;
  private readAt(place: Place, ref: TokenRef, orElsewhere: false): Promise<TokenLookup | null>;
  private readAt(place: Place, ref: TokenRef, orElsewhere: boolean): Promise<TokenLookup | null> {
    // Called inside `read`'s try and from an async function: a synchronous throw rejects either way.
    return this.core.scripts
      .getToken(place.record, place.notBefore, place.idpNotBefore)
      .then((reply): TokenLookup | null | Promise<TokenLookup> => {
        const json = reply as string | 0 | null;
        if (json === null) return orElsewhere ? this.readElsewhere(ref, place.tag) : null;
        this.remember(ref.hash, place);
        if (json === 0) return { state: 'revoked' };
        const [userId, issuedAt, expiresAt, claims] = JSON.parse(json) as [
          string,
          number,
          number,
          Record<string, unknown>,
        ];
        return { state: 'hit', token: { userId, issuedAt, expiresAt, claims } };
      });
  }

  /** The keys of token `hash`'s record under user `tag`. */
  private placeOf(tag: string, hash: string): Place {
    const { keys } = this.core;
    return {
      tag,
      record: keys.token(tag, hash),
      notBefore: keys.notBefore(tag),
      idpNotBefore: keys.idpNotBefore(tag),
    };
  }

  /** Where the token's record was found: a memory proved stale by the pointer is replaced. */
  private remember(hash: string, place: Place): void {
    if (this.places.get(hash)?.tag !== place.tag) this.places.set(hash, place);
  }
}

/** Bucket `bucket`'s share of `total` over `buckets` buckets: the remainder goes to the first ones. */
function bucketShare(total: number, bucket: number, buckets: number): number {
  return Math.floor(total / buckets) + (bucket < total % buckets ? 1 : 0);
}
