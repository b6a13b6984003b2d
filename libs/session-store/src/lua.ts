/**
 * The session store's Lua loader, for other libraries that keep Lua (`#session-store/lua`,
 * `@session-revoker/session-store/lua`): one include mechanism and one way to recognise a script's
 * errors across the project.
 */
export { LuaFolder, luaErrorCode, luaFileName } from './lua-folder.js';
export type { ScriptCall } from './lua-folder.js';
