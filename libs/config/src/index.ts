export { ADMIN_SCOPES, ConfigError, ENV_VARIABLES, loadConfig, loadConfigOrExit } from './app-config.js';
export type {
  AdminApiKey,
  AdminScope,
  AppConfig,
  JwtIssuerConfig,
  TokenIssuerSettings,
} from './app-config.js';
export { APP_CONFIG, ConfigModule } from './config.module.js';
