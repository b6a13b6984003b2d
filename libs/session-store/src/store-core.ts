import { InvalidArgumentError, SessionRevokedError } from './errors.js';
import { KeySpace } from './keys.js';
import { defineScripts, type RedisClient, scriptErrorCode, type Scripts } from './scripts.js';
import type { SessionStoreOptions } from './session-store.js';

/**
 * What the session store and its express-session adapter both build on: the Redis client, the key
 * layout, the Lua scripts defined on that client, and how the scripts' errors become the store's.
 * Created once, from the store's options, by the SessionStore constructor.
 */
export class StoreCore {
  readonly redis: RedisClient;
  readonly keys: KeySpace;
  readonly scripts: Scripts;

  constructor(options: Pick<SessionStoreOptions, 'redis' | 'prefix' | 'tagSecret'>) {
    if (!options?.redis) throw new InvalidArgumentError('redis client is required');
    if (typeof options.tagSecret !== 'string' || options.tagSecret.length < 16)
      throw new InvalidArgumentError('tagSecret must be at least 16 characters');
    const prefix = options.prefix ?? 'sr';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix))
      throw new InvalidArgumentError('prefix must be 1-64 characters [A-Za-z0-9_.-]');
    this.redis = options.redis;
    this.keys = new KeySpace(prefix, options.tagSecret);
    this.scripts = defineScripts(this.redis);
  }

  /**
   * Before a session or token is written, records it in its IdP session's index (`idp`: the IdP-session
   * hash and the member `<tag>:<kind id>`) and in each group's index (member: the user id), each in its
   * own slot, and returns the highest of those indexes' not-befores (0 when none): the caller's write
   * script refuses a record born before it, so a login racing a back-channel logout or a group's
   * fan-out cannot slip past.
   */
  async indexOutside(
    idp: { hash: string; member: string } | undefined,
    groups: readonly string[],
    userId: string,
    expiryBound: number,
  ): Promise<number> {
    const stamps = (await Promise.all([
      idp
        ? this.scripts.indexMember(
            this.keys.idpIndex(idp.hash),
            this.keys.idpNotBeforeGlobal(idp.hash),
            idp.member,
            expiryBound,
          )
        : '',
      ...groups.map((g) =>
        this.scripts.indexMember(this.keys.group(g), this.keys.groupNotBefore(g), userId, expiryBound),
      ),
    ])) as string[];
    return Math.max(0, ...stamps.map((nb) => Number(nb || 0)));
  }

  /**
   * Deletes user `tag`'s express-session record `hash` and its entry in the user's index; with `idp`,
   * only if it was born of that IdP session before its not-before (a back-channel logout's clean-up:
   * the user's stamp already refuses it). True when it was deleted.
   */
  async deleteExpressRecord(
    tag: string,
    hash: string,
    idp?: { hash: string; notBefore: number },
  ): Promise<boolean> {
    const record = this.keys.expressSession(hash);
    const [owner, iat, ih] = await this.redis.hmget(record, 'tag', 'iat', 'ih');
    if (owner !== tag || !iat) return false;
    if (idp && (ih !== idp.hash || !(Number(iat) < idp.notBefore))) return false;
    // Deleted only if it is still that login (and of that IdP session): a save may have moved it meanwhile.
    const deleted = (await this.scripts.unlinkOwned(record, tag, iat, ...(idp ? [idp.hash] : []))) === 1;
    // The entry of the login read is stale unless that login lives on, moved to another IdP session.
    if (deleted || !idp) await this.redis.zrem(this.keys.userIndex(tag), `e:${iat}:${hash}`);
    return deleted;
  }

  /** Awaits a script call; an error the script replied with on purpose becomes the store's own. */
  async mapErrors<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      switch (scriptErrorCode(err)) {
        case 'REVOKED':
          throw new SessionRevokedError();
        case 'EXPIRED':
          throw new InvalidArgumentError('the session would expire before it starts');
        default:
          throw err;
      }
    }
  }
}
