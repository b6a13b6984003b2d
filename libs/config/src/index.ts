export { ADMIN_SCOPES, ConfigError, ENV_VARIABLES, loadConfig, loadConfigOrExit } from './app-config.js';
export type { AdminApiKey, AdminScope, AppConfig, JwtIssuerConfig } from './app-config.js';
export { APP_CONFIG, ConfigModule } from './config.module.js';
export { producerOptions, revocationJobOptions } from './job-options.js';
export {
  closeRedisClient,
  createRedisClient,
  isRedisUnavailable,
  logRedisErrors,
  redisClientFor,
} from './redis-client.js';
export type { RedisClient } from './redis-client.js';
