import session from 'express-session';
import type { SessionData } from 'express-session';
import { BoundedMemo } from './bounded-memo.js';
import { InvalidArgumentError, SessionRevokedError } from './errors.js';
import { secretHash } from './keys.js';
import { scanKeys } from './scan.js';
import { coreOf, type SessionStore } from './session-store.js';
import type { StoreCore } from './store-core.js';

type Callback<T = void> = (err?: unknown, result?: T) => void;
/** The record a session was read from: its user tag ('' when anonymous), issued-at and IdP-session hash. */
type Origin = { tag: string; iat: string; ih: string };
/** Where a session's not-before stamps live: its user's tag and its IdP-session hash ('' when none). */
type Owner = { tag: string; ih: string };
/** Sessions whose owner each adapter remembers, so their reads take one round trip. */
const OWNERS_KEPT = 10_000;

export interface ExpressSessionStoreOptions {
  /** The session store whose Redis, prefix and tag secret this adapter shares. */
  store: SessionStore;
  /**
   * Where the session holds its user id: a dotted path (default `userId`; e.g. `passport.user`) or a
   * function. A session without one is anonymous: stored, but not indexed under any user.
   */
  userField?: string | ((session: SessionData) => unknown);
  /**
   * Where a logged-in session holds the id of the IdP session it was born of (the ID token's `sid`): a
   * dotted path (default `idpSessionId`) or a function. With one, `SessionStore.revokeIdpSession` (an
   * OIDC back-channel logout) ends this session and leaves the user's others.
   */
  idpSessionField?: string | ((session: SessionData) => unknown);
  /** Lifetime of a session whose cookie has no expiry. Default 86,400 s. */
  ttlSeconds?: number;
}

/**
 * An express-session `Store` on Redis that drops in where connect-redis is used. It keeps
 * express-session's own ids (hashed), indexes each logged-in session under its user, and refuses a
 * session issued before the user's not-before, so `SessionStore.revokeUser` logs these users out too.
 */
export class ExpressSessionStore extends session.Store {
  private readonly core: StoreCore;
  private readonly userOf: (s: SessionData) => unknown;
  private readonly idpOf: (s: SessionData) => unknown;
  private readonly ttlMs: number;
  /** The record each loaded session (data, then the Session built from it) came from. */
  private readonly origins = new WeakMap<object, Origin>();
  /** The owner each session (by hashed id) last had here: a read asks for its stamps with the record. */
  private readonly owners = new BoundedMemo<Owner>(OWNERS_KEPT);

  constructor(options: ExpressSessionStoreOptions) {
    super();
    this.core = coreOf(options.store);
    this.userOf = fieldReader(options.userField ?? 'userId');
    this.idpOf = fieldReader(options.idpSessionField ?? 'idpSessionId');
    this.ttlMs = (options.ttlSeconds ?? 86_400) * 1000;
  }

  override get(sid: string, cb: Callback<SessionData | null>): void {
    this.read(secretHash(sid)).then((s) => cb(null, s), cb);
  }

  override set(sid: string, sess: SessionData, cb?: Callback): void {
    this.write(sid, sess).then(
      () => cb?.(),
      (err) => cb?.(err),
    );
  }

  override touch(sid: string, sess: SessionData, cb?: Callback): void {
    this.write(sid, sess, true).then(
      () => cb?.(),
      (err) => cb?.(err),
    );
  }

  /** Keeps the origin of the data `get` returned on the Session express-session builds from it. */
  override createSession(
    req: Parameters<session.Store['createSession']>[0],
    sess: SessionData,
  ): ReturnType<session.Store['createSession']> {
    const origin = this.origins.get(sess);
    const created = super.createSession(req, sess);
    if (origin) this.origins.set(created, origin);
    return created;
  }

  override destroy(sid: string, cb?: Callback): void {
    this.remove(secretHash(sid)).then(
      () => cb?.(),
      (err) => cb?.(err),
    );
  }

  override all(cb: Callback<SessionData[]>): void {
    this.collect().then(
      (rows) =>
        cb(
          null,
          rows.map((r) => r.session),
        ),
      cb,
    );
  }

  override length(cb: Callback<number>): void {
    this.collect().then((rows) => cb(null, rows.length), cb);
  }

  override clear(cb?: Callback): void {
    this.clearAll().then(
      () => cb?.(),
      (err) => cb?.(err),
    );
  }

  /** The hashed ids of the live sessions (express-session's own ids are never stored). */
  ids(cb: Callback<string[]>): void {
    this.collect().then(
      (rows) =>
        cb(
          null,
          rows.map((r) => r.id),
        ),
      cb,
    );
  }

  /**
   * The live session of a record (by hashed id), or null when it is gone or a not-before stamp covers
   * it. One round trip for a session this process has seen: its stamps are asked for with the record,
   * where its owner was last time. When the record names another owner (a change of user or IdP
   * session made elsewhere), that owner's stamps are read in a second round trip; the guess never
   * decides.
   */
  private async read(hash: string): Promise<SessionData | null> {
    const { redis, keys } = this.core;
    const guess = this.owners.get(hash);
    const [[tag, iat, data, ih], guessed] = await Promise.all([
      redis.hmget(keys.expressSession(hash), 'tag', 'iat', 'data', 'ih'),
      guess?.tag ? this.stamps(guess) : undefined,
    ]);
    if (!data) return null;
    const owner = { tag: tag ?? '', ih: ih ?? '' };
    const same = guess?.tag === owner.tag && guess.ih === owner.ih;
    // A new owner, or none now (anonymous: no stamps to ask for next time).
    if (!same) this.owners.set(hash, owner);
    if (owner.tag) {
      const [nb, inb] = same ? guessed! : await this.stamps(owner);
      if (Number(iat) < nb || Number(iat) < inb) return null;
    }
    const sess = JSON.parse(data) as SessionData;
    this.origins.set(sess, { ...owner, iat: iat! });
    return sess;
  }

  /** The not-before stamps covering an owner's records: the user's, and its IdP session's in the user's slot. */
  private async stamps({ tag, ih }: Owner): Promise<[number, number]> {
    const { redis, keys } = this.core;
    const [nb, inb] = await Promise.all([
      redis.get(keys.notBefore(tag)),
      ih ? redis.hget(keys.idpNotBefore(tag), ih) : null,
    ]);
    return [Number(nb ?? 0), Number(inb ?? 0)];
  }

  /**
   * Saves a session. A login (a record new to its user) that a not-before stamp of its user or IdP
   * session covers is refused (invariant 1: it may have authenticated before the revocation) and is not
   * dropped in silence: the save fails with `SessionRevokedError`, which express-session hands to
   * `req.session.save`'s callback, or to `next` after an automatic save. A re-save of a session so
   * covered ends it without an error: its next read refuses it anyway.
   */
  private async write(sid: string, sess: SessionData, touching = false): Promise<void> {
    const { redis, keys, scripts } = this.core;
    const user = this.userOf(sess);
    const userId = user === undefined || user === null || user === '' ? '' : String(user);
    const tag = userId ? keys.userTag(userId) : '';
    const expires = sess.cookie?.expires ? new Date(sess.cookie.expires).getTime() : Date.now() + this.ttlMs;
    const hash = secretHash(sid);
    const ih = tag ? idpSessionHash(this.idpOf(sess)) : '';
    // A session read before a logout or revocation and saved after it must not come back: the script
    // writes it only if it is still the record it was read from. Only a login may issue a session.
    const origin = this.origins.get(sess);
    const expected = origin && origin.tag === tag && (tag !== '' || touching) ? origin.iat : '';
    // The session's entry in its IdP session's index, until it expires: how a back-channel logout that
    // names only the IdP session finds this user. Answers that IdP session's not-before, if any.
    const indexIdp = () =>
      this.core.indexOutside({ hash: ih, member: keys.idpExpressMember(tag, hash) }, [], userId, expires);
    // An IdP session (or user) new to this session is indexed first, as createSession does, so a logout
    // finds it from then on; one that came before answers its stamp, and the save is refused if that
    // covers the session.
    const indexedFirst = ih !== '' && (ih !== origin?.ih || tag !== origin?.tag);
    const outside = indexedFirst ? await indexIdp() : 0;
    const [iat, reindex, curTag, curIat] = (await scripts.saveExpressSession(
      keys.expressSession(hash),
      userId,
      tag,
      JSON.stringify(sess),
      expires,
      expected,
      // Like connect-redis' EXPIRE, a touch only extends a record: it never creates one.
      touching ? '1' : '',
      ih,
      outside ? String(outside) : '',
    )) as [string, number, string, string, string];
    // Before this save, the record did not exist or was another user's: this save is a login.
    const login = !touching && (!curIat || curTag !== tag);
    if (!iat) {
      // Covered by its IdP session's not-before: the script deleted the record; its entry goes too.
      // (Or the record is not the one read, or a touch found none: never with a login's empty
      // expected issuedAt and no touch, so a login here was covered.)
      if (curTag && curIat) await redis.zrem(keys.userIndex(curTag), `e:${curIat}:${hash}`);
      if (login && expected === '') throw new SessionRevokedError();
      return;
    }
    this.origins.set(sess, { tag, iat, ih });
    this.owners.set(hash, { tag, ih });
    // The session changed user or dropped it: its entry under the previous user must go.
    if (curTag && curIat && curTag !== tag) await redis.zrem(keys.userIndex(curTag), `e:${curIat}:${hash}`);
    if (reindex !== 1) return;
    try {
      // The record now lives longer (a rolling or changed session): its entries in the user's index and
      // in its IdP session's must too, or a logout after the first expiry would find nobody. Two slots,
      // so two commands, sent together.
      const [, idpStamp] = await Promise.all([
        this.core.mapErrors(
          scripts.indexForeign(keys.notBefore(tag), keys.userIndex(tag), 'e', hash, iat, expires),
        ),
        ih && !indexedFirst ? indexIdp() : 0,
      ]);
      if (Number(iat) < idpStamp) await this.remove(hash);
    } catch (err) {
      if (!(err instanceof SessionRevokedError)) throw err;
      // Born before the user's not-before: it must not live on unindexed.
      await this.remove(hash);
      if (login) throw err;
    }
  }

  /**
   * Deletes a record and its entry in its user's index: two round trips, the record read and deleted
   * at once (so the entry removed is the deleted record's), then the entry, in the user's slot.
   */
  private async remove(hash: string): Promise<void> {
    const { redis, keys } = this.core;
    const record = keys.expressSession(hash);
    const replies = await redis.multi().hmget(record, 'tag', 'iat').unlink(record).exec();
    if (!replies) throw new Error('the session was not removed');
    for (const [err] of replies) if (err) throw err;
    const [tag, iat] = replies[0]![1] as (string | null)[];
    if (tag && iat) await redis.zrem(keys.userIndex(tag), `e:${iat}:${hash}`);
  }

  private async collect(): Promise<{ id: string; session: SessionData }[]> {
    const { redis, keys } = this.core;
    const prefix = keys.expressSession('');
    const out: { id: string; session: SessionData }[] = [];
    for await (const { keys: found } of scanKeys(redis, keys.expressSessionPattern())) {
      for (const key of found) {
        const id = key.slice(prefix.length);
        const session = await this.read(id);
        if (session) out.push({ id, session });
      }
    }
    return out;
  }

  private async clearAll(): Promise<void> {
    const { redis, keys } = this.core;
    for await (const { keys: found } of scanKeys(redis, keys.expressSessionPattern())) {
      await Promise.all(found.map((k) => this.remove(k.slice(keys.expressSession('').length))));
    }
  }
}

/** Reads a session's field: a dotted path into it, or the caller's own function. */
function fieldReader(field: string | ((s: SessionData) => unknown)): (s: SessionData) => unknown {
  if (typeof field === 'function') return field;
  const path = field.split('.');
  return (s) => path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], s);
}

/** Longest IdP session id taken: only its hash is stored, so the bound is only against abuse. */
const MAX_IDP_SESSION_ID = 1024;

/** The hash of a session's IdP session id, or '' when it has none. */
function idpSessionHash(idp: unknown): string {
  if (idp === undefined || idp === null || idp === '') return '';
  const id = String(idp);
  if (id.length > MAX_IDP_SESSION_ID)
    throw new InvalidArgumentError(`idpSessionId must be at most ${MAX_IDP_SESSION_ID} characters`);
  return secretHash(id);
}
