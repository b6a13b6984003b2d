import { afterEach, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger, NEST_BOOT_CONTEXTS, PinoNestLogger, resolveLogFormat } from './logger.js';

/** A stream that keeps what is written to it; `tty` makes it look like a terminal. */
function sink(tty = false): Writable & { text(): string; lines(): string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  }) as Writable & { text(): string; lines(): string[]; isTTY?: boolean };
  if (tty) stream.isTTY = true;
  stream.text = () => text;
  stream.lines = () => text.split('\n').filter(Boolean);
  return stream;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

const SECRETS = [
  'hdr-secret-value',
  'nested-secret-value',
  'webhook-hdr-value',
  'cookie-value',
  'upstream-auth-value',
  'logout-token-value',
];

/** One line of each kind that must not leak, as the gateway's request logger and code write them. */
function logSecrets(logger: ReturnType<typeof createLogger>): void {
  logger.info(
    {
      req: {
        method: 'POST',
        url: '/webhooks/pingone?token=query-secret',
        headers: {
          authorization: 'Bearer hdr-secret-value',
          cookie: 'sid=cookie-value',
          'x-webhook-secret': 'webhook-hdr-value',
        },
      },
    },
    'request with credentials',
  );
  logger.warn({ subscription: { secret: 'nested-secret-value' } }, 'a secret in an object');
  // Not a request: no serializer drops these, redaction must.
  logger.error(
    {
      headers: { authorization: 'Bearer upstream-auth-value' },
      body: { logout_token: 'logout-token-value' },
    },
    'an upstream call failed',
  );
}

describe('createLogger formats', () => {
  const savedEnv = { ...process.env };
  afterEach(() => {
    for (const name of ['NO_COLOR', 'FORCE_COLOR', 'TERM'])
      if (savedEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedEnv[name];
  });

  it('auto is pretty on a terminal and JSON elsewhere; json and pretty are what they say', () => {
    expect(resolveLogFormat('auto', { isTTY: true })).toBe('pretty');
    expect(resolveLogFormat('auto', sink())).toBe('json');
    expect(resolveLogFormat('json', { isTTY: true })).toBe('json');
    expect(resolveLogFormat('pretty', sink())).toBe('pretty');
  });

  it('json: one JSON object a line, secrets redacted', () => {
    const out = sink();
    logSecrets(createLogger('info', out, ['req.headers["x-webhook-secret"]'], 'json'));
    const lines = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l['level'], l['msg']])).toEqual([
      [30, 'request with credentials'],
      [40, 'a secret in an object'],
      [50, 'an upstream call failed'],
    ]);
    expect(lines[2]).toMatchObject({ headers: { authorization: '[redacted]' } });
    for (const secret of [...SECRETS, 'query-secret']) expect(out.text()).not.toContain(secret);
  });

  it('pretty: a time, a level name and the message on each line, no JSON, secrets still redacted', () => {
    const out = sink();
    const logger = createLogger('info', out, ['req.headers["x-webhook-secret"]'], 'pretty');
    logSecrets(logger);
    logger
      .child({ reqId: 'req-42' })
      .info(
        { req: { method: 'GET', url: '/health/live?x=1' }, res: { statusCode: 200 }, responseTime: 1.25 },
        'request completed',
      );
    const text = out.text();
    // Not a terminal: no colour codes.
    expect(text).not.toMatch(ANSI);
    for (const line of out.lines().filter((l) => !l.startsWith(' '))) {
      expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR): /);
      expect(line).not.toMatch(/^\s*\{/);
    }
    expect(text).toContain('INFO: request with credentials: POST /webhooks/pingone');
    expect(text).toContain('WARN: a secret in an object');
    expect(text).toContain('ERROR: an upstream call failed');
    expect(text).toMatch(/"authorization": "\[redacted\]"/);
    expect(text).toContain('INFO: request completed: GET /health/live -> 200 in 1.3 ms (request req-42)');
    for (const secret of [...SECRETS, 'query-secret']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('auto on a terminal: pretty and coloured (NO_COLOR: pretty without colour)', () => {
    delete process.env['NO_COLOR'];
    const tty = sink(true);
    createLogger('info', tty, [], 'auto').warn({ context: 'Maintenance' }, 'look at this');
    expect(tty.text()).toMatch(ANSI);
    expect(tty.text().replace(ANSI, '')).toMatch(/^\[[\d:.]+\] WARN: \[Maintenance\] look at this\n$/);

    process.env['NO_COLOR'] = '1';
    const plain = sink(true);
    createLogger('info', plain, [], 'auto').warn('look at this');
    expect(plain.text()).not.toMatch(ANSI);
    expect(plain.text()).toMatch(/^\[[\d:.]+\] WARN: look at this\n$/);
  });

  it('pretty: a stack passed by Nest is shown as lines, not as one quoted string', () => {
    const out = sink();
    new PinoNestLogger(createLogger('info', out, [], 'pretty')).error(
      'it broke',
      'Error: it broke\n    at somewhere (file.js:1:1)',
      'ExceptionsHandler',
    );
    expect(out.lines()).toEqual([
      expect.stringMatching(/ ERROR: \[ExceptionsHandler\] it broke$/),
      '    trace: Error: it broke',
      '            at somewhere (file.js:1:1)',
    ]);
  });
});

describe('PinoNestLogger', () => {
  const nestBoot = (logger: PinoNestLogger) => {
    logger.log('Starting Nest application...', 'NestFactory');
    logger.log('GatewayModule dependencies initialized', 'InstanceLoader');
    logger.log('AdminController {/admin}:', 'RoutesResolver');
    logger.log('Mapped {/admin/audit, GET} route', 'RouterExplorer');
    logger.log('Nest application successfully started', 'NestApplication');
    logger.warn('a route clashes', 'RouterExplorer');
    logger.log('index sweep trimmed 3 entries', 'Maintenance');
  };

  it("puts Nest's start-up chatter at debug: at info only the service's lines and warnings remain", () => {
    const out = sink();
    nestBoot(new PinoNestLogger(createLogger('info', out, [], 'json')));
    const lines = out.lines().map((l) => JSON.parse(l) as { level: number; context: string; msg: string });
    expect(lines.map((l) => [l.level, l.context, l.msg])).toEqual([
      [40, 'RouterExplorer', 'a route clashes'],
      [30, 'Maintenance', 'index sweep trimmed 3 entries'],
    ]);
  });

  it('still has it at debug', () => {
    const out = sink();
    nestBoot(new PinoNestLogger(createLogger('debug', out, [], 'json')));
    const lines = out.lines().map((l) => JSON.parse(l) as { level: number; context: string });
    expect(lines.filter((l) => l.level === 20).map((l) => l.context)).toEqual([
      'NestFactory',
      'InstanceLoader',
      'RoutesResolver',
      'RouterExplorer',
      'NestApplication',
    ]);
    for (const l of lines.filter((x) => x.level === 20)) expect(NEST_BOOT_CONTEXTS.has(l.context)).toBe(true);
  });
});
