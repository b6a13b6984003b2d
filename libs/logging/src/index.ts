export {
  createLogger,
  loggerOptions,
  NEST_BOOT_CONTEXTS,
  PinoNestLogger,
  REDACTED_PATHS,
  requestId,
  resolveLogFormat,
} from './logger.js';
export type { LogFormat } from './logger.js';
