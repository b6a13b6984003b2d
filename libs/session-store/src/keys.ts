import { createHmac, hash } from 'node:crypto';
import { BoundedMemo } from './bounded-memo.js';

/** Base64url of the first 16 bytes of a digest: 22 characters, 128 bits. */
const short = (digest: Buffer): string => digest.subarray(0, 16).toString('base64url');

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/**
 * For each base64url character of a whole digest's encoding, the 22nd character of `short`'s: the
 * 22nd character holds the 16th byte's low 2 bits and, in the whole encoding, the 17th byte's high 4
 * bits as well; `short` encodes zeros there.
 */
const LAST_OF_SHORT = new Map([...BASE64URL].map((c, i) => [c, BASE64URL[i & 0b110000]!]));

/**
 * The non-secret id of a secret value (session id, token): Redis only ever sees this. It is `short` of
 * the value's SHA-256, taken from the digest's base64url text: asking `hash` for a Buffer and encoding
 * 16 bytes of it cost 2.4 µs a call, this 0.7 µs, on every read of a session or a cached token.
 */
export const secretHash = (secret: string): string => {
  const text = hash('sha256', secret, 'base64url');
  return text.slice(0, 21) + LAST_OF_SHORT.get(text[21]!)!;
};

/**
 * How many buckets (slots) the remembered failures are spread over, each holding its share of the
 * bound. Fixed: a reader finds a token's bucket from its hash, whatever bound the writer was given.
 * 16 hash tags `tf.0`..`tf.15` fall on every node of a small cluster (5/6/5 on three masters).
 */
export const TOKEN_FAILURE_BUCKETS = 16;

/** User tags computed lately, per key space: an HMAC costs microseconds on every hot-path read. */
const TAGS_KEPT = 10_000;

/**
 * The key layout. A user's keys share the hash tag `{tag}`, where tag is a keyed hash of the user id,
 * so one Lua script can touch all of them on Redis Cluster and the user id never appears in a cookie.
 */
export class KeySpace {
  constructor(
    readonly prefix: string,
    private readonly tagSecret: string,
  ) {}

  private readonly tags = new BoundedMemo<string>(TAGS_KEPT);

  userTag(userId: string): string {
    let tag = this.tags.get(userId);
    if (tag === undefined) {
      tag = short(createHmac('sha256', this.tagSecret).update(userId).digest());
      this.tags.set(userId, tag);
    }
    return tag;
  }

  session(tag: string, handle: string): string {
    return `${this.prefix}:{${tag}}:s:${handle}`;
  }
  notBefore(tag: string): string {
    return `${this.prefix}:{${tag}}:nb`;
  }
  idpNotBefore(tag: string): string {
    return `${this.prefix}:{${tag}}:inb`;
  }
  userIndex(tag: string): string {
    return `${this.prefix}:{${tag}}:idx`;
  }
  /** A marker in the user's slot, written right before a WAIT for replicas there (holds nothing). */
  replicaWait(tag: string): string {
    return `${this.prefix}:{${tag}}:w`;
  }
  /** A cached token's record, in its user's slot (so a read checks the user's stamps in one script). */
  token(tag: string, hash: string): string {
    return `${this.prefix}:{${tag}}:tk:${hash}`;
  }
  /** Which user slot a cached token lives in (its tag), for readers that know only the token. */
  tokenPointer(hash: string): string {
    return `${this.prefix}:tp:${hash}`;
  }
  /**
   * Which bucket of remembered failures a token belongs to (0 to TOKEN_FAILURE_BUCKETS - 1), from its
   * hash alone, so that every process finds a token's failure without knowing the bound.
   */
  tokenFailureBucket(hash: string): number {
    return Math.max(0, BASE64URL.indexOf(hash.charAt(0))) % TOKEN_FAILURE_BUCKETS;
  }
  /**
   * One bucket of the tokens remembered as failed (zset: hash -> until), in a slot of its own with
   * its tokens' reasons: the buckets spread garbage-token lookups over a cluster's nodes.
   */
  tokenFailures(bucket: number): string {
    return `${this.prefix}:{tf.${bucket}}`;
  }
  /** Every bucket of remembered failures, for counting them. */
  tokenFailureBuckets(): string[] {
    return Array.from({ length: TOKEN_FAILURE_BUCKETS }, (_, bucket) => this.tokenFailures(bucket));
  }
  /** Why a token failed, in its bucket's slot. */
  tokenFailure(hash: string): string {
    return `${this.tokenFailures(this.tokenFailureBucket(hash))}:${hash}`;
  }
  /** The single-flight lease of one token's verification, shared by every process (its outcome goes to the cache). */
  tokenFlight(hash: string): string {
    return `${this.prefix}:tl:${hash}`;
  }
  expressSession(hash: string): string {
    return `${this.prefix}:es:${hash}`;
  }
  group(groupId: string): string {
    return `${this.prefix}:grp:{${secretHash(groupId)}}`;
  }
  groupNotBefore(groupId: string): string {
    return `${this.prefix}:grp:{${secretHash(groupId)}}:nb`;
  }
  idpIndex(idpHash: string): string {
    return `${this.prefix}:idp:{${idpHash}}:idx`;
  }
  idpNotBeforeGlobal(idpHash: string): string {
    return `${this.prefix}:idp:{${idpHash}}:nb`;
  }
  /** A login in progress at an OpenID Provider (PKCE verifier, nonce, return path), by its state's hash. */
  loginState(stateHash: string): string {
    return `${this.prefix}:login:${stateHash}`;
  }
  /** The lease of one session's token refresh at the edge, shared by every process. */
  refreshLock(handle: string): string {
    return `${this.prefix}:refresh:${handle}`;
  }
  /** A session's member of its IdP session's index. */
  idpSessionMember(tag: string, handle: string): string {
    return `${tag}:${handle}`;
  }
  /** An express-session record's member of its IdP session's index (`e.`: it lives outside the slot). */
  idpExpressMember(tag: string, hash: string): string {
    return `${tag}:e.${hash}`;
  }
  /** A cached token's member of its IdP session's index (`t.` keeps it apart from session handles). */
  idpTokenMember(tag: string, hash: string): string {
    return `${tag}:t.${hash}`;
  }
  /** SCAN pattern of every key the store writes. */
  everyKeyPattern(): string {
    return `${this.prefix}:*`;
  }
  /** SCAN pattern of every express-session record (the hash follows `expressSession('')`). */
  expressSessionPattern(): string {
    return `${this.expressSession('')}*`;
  }
  /** SCAN patterns of every sorted-set index the sweep trims. */
  indexPatterns(): string[] {
    return [`${this.prefix}:{*}:idx`, `${this.prefix}:grp:{*}`, `${this.prefix}:idp:{*}:idx`];
  }
}

/** An index member names the record kind, the instant it was issued and its id: `s:<issuedAt>:<handle>`. */
export interface IndexEntry {
  kind: 's' | 't' | 'e';
  issuedAt: number;
  id: string;
  member: string;
}

export function parseIndexMember(member: string): IndexEntry | null {
  const m = /^([ste]):(\d+):(.+)$/.exec(member);
  if (!m) return null;
  return { kind: m[1] as IndexEntry['kind'], issuedAt: Number(m[2]), id: m[3]!, member };
}
