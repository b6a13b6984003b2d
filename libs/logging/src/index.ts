export { createLogger, loggerOptions, PinoNestLogger, REDACTED_PATHS, requestId } from './logger.js';
