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
