import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { MessageFormatFunc, PrettyOptions } from 'pino-pretty';
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

/**
 * LOG_FORMAT: `json` (one JSON object a line, for a log pipeline), `pretty` (a line a person reads,
 * coloured on a terminal), or `auto`: pretty when the logs go to a terminal, JSON otherwise.
 */
export type LogFormat = 'auto' | 'json' | 'pretty';

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

const isTTY = (stream: unknown): boolean => (stream as { isTTY?: boolean } | undefined)?.isTTY === true;

/** The format `auto` stands for, given where the lines go (`stream`, else stdout). */
export function resolveLogFormat(format: LogFormat, stream?: unknown): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return isTTY(stream ?? process.stdout) ? 'pretty' : 'json';
}

/**
 * A pino logger, redacted. JSON (the production path: pino writes straight to the stream) unless the
 * format says pretty; then each line, already redacted and serialized by pino, is turned into a line
 * a person reads, in this process and synchronously (nothing is lost on exit, and lines keep their
 * order with what else the process prints).
 */
export function createLogger(
  level: string,
  stream?: DestinationStream,
  extraRedactions: string[] = [],
  format: LogFormat = 'json',
): Logger {
  const options = loggerOptions(level, extraRedactions);
  if (resolveLogFormat(format, stream) === 'pretty') return pino(options, prettyStream(stream));
  return stream ? pino(options, stream) : pino(options);
}

/** Fields shown in the line itself (or not worth a line of their own): left out of the details below it. */
const SHOWN_INLINE = ['pid', 'hostname', 'context', 'req', 'res', 'responseTime', 'reqId'];

/** `[Context] message`, and for a request line its method, path, status, time and request id. */
const formatMessage: MessageFormatFunc = (log, messageKey, _level, { colors }) => {
  const context = typeof log['context'] === 'string' ? colors.cyan(`[${log['context']}] `) : '';
  let message = String(log[messageKey] ?? '');
  const req = log['req'] as { method?: string; path?: string } | undefined;
  if (req && typeof req === 'object') {
    const status = (log['res'] as { statusCode?: number } | undefined)?.statusCode;
    const time = typeof log['responseTime'] === 'number' ? ` in ${log['responseTime'].toFixed(1)} ms` : '';
    message += `: ${req.method ?? '?'} ${req.path ?? '?'}${status === undefined ? '' : ` -> ${status}`}${time}`;
  }
  if (typeof log['reqId'] === 'string') message += colors.gray(` (request ${log['reqId']})`);
  return context + message;
};

/**
 * pino-pretty as a synchronous in-process destination. Loaded only here, so JSON mode never loads it.
 * Colours when writing to a terminal (NO_COLOR turns them off).
 */
function prettyStream(stream?: DestinationStream): DestinationStream {
  const out = stream ?? pino.destination({ dest: 1, sync: true });
  // Stdout: coloured on a terminal, or with FORCE_COLOR. A stream given: when it is a terminal.
  const colorize =
    !('NO_COLOR' in process.env) &&
    (stream
      ? isTTY(stream)
      : 'FORCE_COLOR' in process.env || (isTTY(process.stdout) && process.env['TERM'] !== 'dumb'));
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as {
    prettyFactory: (options: PrettyOptions) => (line: string) => string;
  };
  const prettify = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: SHOWN_INLINE.join(','),
    messageFormat: formatMessage,
    // The message in the terminal's own colour (the context and request id stand out from it).
    customColors: 'message:reset',
    useOnlyCustomProps: false,
    // Nest's error lines carry a stack as text: shown as lines, not as one quoted string.
    customPrettifiers: {
      trace: (value) =>
        typeof value === 'string'
          ? value
              .split('\n')
              .map((line, i) => (i === 0 ? line : `    ${line}`))
              .join('\n')
          : JSON.stringify(value),
    },
  });
  return { write: (line: string) => void out.write(prettify(line)) };
}

/** A request id: the caller's `x-request-id` when it looks like one, else a new UUID. */
export function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(given) ? given : randomUUID();
}

/**
 * Nest's own start-up chatter (each module initialized, each route mapped: some fifty lines): at
 * debug, so a start at info shows what the service says. Their warnings and errors stay as they are.
 */
export const NEST_BOOT_CONTEXTS: ReadonlySet<string> = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
  'NestApplicationContext',
]);

/** Nest's logger on top of pino, so framework and application lines go the same way as the request lines. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    if (context !== undefined && NEST_BOOT_CONTEXTS.has(context))
      this.logger.debug({ context }, String(message));
    else this.logger.info({ context }, String(message));
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
  fatal(message: unknown, context?: string): void {
    this.logger.fatal({ context }, String(message));
  }
}
