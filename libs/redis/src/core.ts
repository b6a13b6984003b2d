/**
 * The framework-free part of libs/redis (`#redis/core`), for libraries that must not load NestJS or
 * the configuration: the session store, the quarantine.
 */
export { LuaFolder, luaErrorCode } from './lua-scripts.js';
export type { RedisClient, ScriptCall } from './lua-scripts.js';
export { isStreamId } from './stream-id.js';
