export { SessionStore } from './session-store.js';
export { TokenCache, tokenRef } from './token-cache.js';
export type { CacheTokenInput, CachedToken, TokenLookup, TokenRef } from './token-cache.js';
export type {
  CreateSessionInput,
  CreatedSession,
  RevokeResult,
  Session,
  SessionStoreOptions,
  SessionSummary,
  SweepResult,
} from './session-store.js';
export { InvalidArgumentError, SessionRevokedError, SessionStoreError } from './errors.js';
export type { RedisClient } from './scripts.js';
export type { ScanPosition } from './scan.js';
