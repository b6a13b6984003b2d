import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Anything that could log someone in or identify a session: redacted wherever it appears, however a
 * later change puts it in a log line.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.authorization',
  '*.cookie',
  '*.password',
  '*.secret',
  '*.token',
  '*.logout_token',
  '*.sessionId',
  '*.session_id',
  '*.tagSecret',
];

/** JSON logs with pino: redacted, with the request id of Fastify's request logger on every request line. */
export function loggerOptions(level: string, extraRedactions: string[] = []): LoggerOptions {
  return {
    level,
    redact: { paths: [...REDACTED_PATHS, ...extraRedactions], censor: '[redacted]' },
    serializers: {
      // Method and path only: a query string may carry a token, headers carry credentials.
      req: (req: { method?: string; url?: string; id?: string }) => ({
        method: req.method,
        path: (req.url ?? '').split('?')[0],
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
  };
}

export function createLogger(
  level: string,
  stream?: DestinationStream,
  extraRedactions: string[] = [],
): Logger {
  return stream
    ? pino(loggerOptions(level, extraRedactions), stream)
    : pino(loggerOptions(level, extraRedactions));
}

/** A request id: the caller's `x-request-id` when it looks like one, else a new UUID. */
export function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(given) ? given : randomUUID();
}

/** Nest's logger on top of pino, so framework and application lines are JSON like the request lines. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}
