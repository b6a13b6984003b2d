import type { Cluster, Redis } from 'ioredis';
import { LuaFolder, luaErrorCode, type ScriptCall } from './lua-folder.js';

export type RedisClient = Redis | Cluster;
export type { ScriptCall };

/** Each Lua script: its file (next to this one, in lua/) and how many KEYS it takes (-1: given per call). */
const SCRIPTS = {
  createSession: 4,
  getSession: 3,
  touchSession: 4,
  revokeUser: 2,
  stampUsers: -1,
  deleteEntries: -1,
  revokeHandle: 2,
  indexMember: 2,
  stampIndex: 2,
  revokeIdpUser: -1,
  indexForeign: 2,
  unlinkOwned: 1,
  saveExpressSession: 1,
  getToken: 3,
  cacheToken: 4,
  rememberFailure: 2,
  releaseFlight: 1,
  setClaims: 3,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export type Scripts = Record<ScriptName, ScriptCall>;

const lua = new LuaFolder(new URL('./lua/', import.meta.url));

/** `lua` with its include directives expanded (see LuaFolder); `script` names it in errors. */
export const withIncludes = (
  source: string,
  script: string,
  readInclude?: (name: string) => string,
): string => lua.expand(source, script, readInclude);

/** Every script's source as Redis gets it (includes expanded), by name. */
export const scriptSources = (): [ScriptName, string][] =>
  (Object.keys(SCRIPTS) as ScriptName[]).map((name) => [name, lua.source(name)]);

const COMMAND_PREFIX = 'sessionStore_';

/** Registers the scripts on the client, under names prefixed `sessionStore_` (see LuaFolder.define). */
export const defineScripts = (redis: RedisClient): Scripts => ({
  ...lua.define(redis, COMMAND_PREFIX, SCRIPTS),
  // The two reads every request of an application makes: EVALSHA without ioredis's wrapper.
  getSession: lua.readOf3(redis, 'getSession'),
  getToken: lua.readOf3(redis, 'getToken'),
});

/** The codes the scripts' errors start with: `redis.error_reply('<CODE> <message>')`. */
export const LUA_ERROR_CODES = ['REVOKED', 'EXPIRED'] as const;
export type LuaErrorCode = (typeof LUA_ERROR_CODES)[number];

/** The code of an error one of the scripts replied with (see luaErrorCode), else undefined. */
export const scriptErrorCode = (err: unknown): LuaErrorCode | undefined => luaErrorCode(err, LUA_ERROR_CODES);
