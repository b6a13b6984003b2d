import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import request from 'supertest';
import { loadConfig } from '#config';
import { bootGateway, logLines } from '../support/gateway.js';
import { deletePrefix, freePorts, REDIS_URL, testRedis, uniquePrefix, waitFor } from '../support/redis.js';

const SECRET = 'logging-webhook-secret-value';
const ADMIN_KEY = 'logging-admin-key-0123456789';

describe('logs', () => {
  const { lines, stream: sink } = logLines();
  let app: NestFastifyApplication;
  const prefix = uniquePrefix('log');

  beforeAll(async () => {
    const config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'info',
      QUEUE_PREFIX: `{${prefix}}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      ADMIN_API_KEY: ADMIN_KEY,
    });
    app = await bootGateway(config, { logs: sink });
  });
  afterAll(async () => {
    await app.close();
    const redis = testRedis();
    await deletePrefix(redis, `{${prefix}}`);
    redis.disconnect();
  });

  it('are JSON with a request id, and carry no credential, token or session id', async () => {
    const server = app.getHttpServer();
    const sessionId = 'AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
    const res = await request(server)
      .post('/webhooks/pingone?token=query-token-value')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Cookie', `sid=${sessionId}`)
      .set('x-request-id', 'req-12345')
      .set('Content-Type', 'application/json')
      .send('{"not": "an event", "token": "body-token-value"}');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('req-12345');
    await request(server).get('/admin/audit').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
    await request(server)
      .post('/webhooks/oidc/backchannel-logout')
      .type('form')
      .send('logout_token=eyJhbGciOiJub25lIn0.e30.');

    expect(lines.length).toBeGreaterThan(0);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // One line per request, when it is answered: method, path (no query), status and duration.
    const mine = parsed.filter((l) => l['reqId'] === 'req-12345');
    expect(mine).toEqual([
      expect.objectContaining({
        msg: 'request completed',
        req: { method: 'POST', path: '/webhooks/pingone' },
        res: { statusCode: 200 },
        responseTime: expect.any(Number),
      }),
    ]);
    const all = lines.join('\n');
    for (const secret of [
      SECRET,
      ADMIN_KEY,
      sessionId,
      'query-token-value',
      'body-token-value',
      'eyJhbGciOiJub25lIn0',
    ])
      expect(all).not.toContain(secret);
  });
});

const SESSION_ID = 'AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
/** What no log line may ever show, whatever its format. */
const TAG_SECRET = 'logging-tag-secret-0123456789';
const NEVER_LOGGED = [SECRET, ADMIN_KEY, TAG_SECRET, SESSION_ID, 'query-token-value', 'body-token-value'];

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
/** A pretty line: `[HH:MM:ss.mmm] LEVEL: message`; the lines under it (details) are indented. */
const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): \S/;
/** Nest's start-up chatter, one pattern per kind of line. */
const NEST_BOOT_NOISE = [
  /dependencies initialized/,
  /Mapped \{/,
  /Starting Nest application/,
  /Nest application successfully started/,
  /Controller \{\//,
];

describe('logs in pretty mode (LOG_FORMAT=pretty)', () => {
  const { lines, stream: sink } = logLines();
  let app: NestFastifyApplication;
  const prefix = uniquePrefix('logpretty');

  beforeAll(async () => {
    const config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'pretty',
      QUEUE_PREFIX: `{${prefix}}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      ADMIN_API_KEY: ADMIN_KEY,
    });
    app = await bootGateway(config, { logs: sink, nestLogs: true });
  });
  afterAll(async () => {
    await app.close();
    const redis = testRedis();
    await deletePrefix(redis, `{${prefix}}`);
    redis.disconnect();
  });

  it('are lines a person reads (time, level name, message; no JSON), and carry no credential, token or session id', async () => {
    const server = app.getHttpServer();
    await request(server)
      .post('/webhooks/pingone?token=query-token-value')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Cookie', `sid=${SESSION_ID}`)
      .set('x-request-id', 'req-pretty-1')
      .set('Content-Type', 'application/json')
      .send('{"not": "an event", "token": "body-token-value"}')
      .expect(200);
    await request(server).get('/admin/audit').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
    await request(server).get('/admin/audit').set('Authorization', `Bearer wrong-${SECRET}`).expect(401);

    const all = lines.join('\n');
    expect(all).not.toMatch(ANSI);
    for (const line of lines) {
      expect(line).not.toMatch(/^\s*\{/);
      if (!line.startsWith(' ')) expect(line).toMatch(PRETTY_LINE);
    }
    expect(lines).toContainEqual(
      expect.stringMatching(
        /\] INFO: request completed: POST \/webhooks\/pingone -> 200 in [\d.]+ ms \(request req-pretty-1\)$/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/\] INFO: request completed: GET \/admin\/audit -> 401 /),
    );
    for (const secret of NEVER_LOGGED) expect(all).not.toContain(secret);
  });

  it("leave out Nest's route mapping at info", () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const noise of NEST_BOOT_NOISE) expect(lines.filter((l) => noise.test(l))).toEqual([]);
  });
});

const GATEWAY = 'dist/apps/gateway/src/main.js';

/**
 * Runs the built gateway (worker embedded) as `npm start` does, its output a pipe or, with `tty`, a
 * terminal (util-linux `script` gives it a pseudo-terminal); sends it a webhook delivery carrying
 * secrets, waits for its request line, stops it with SIGTERM. Returns what it printed.
 */
async function runGateway(
  env: Record<string, string>,
  { tty }: { tty: boolean },
): Promise<{ stdout: string; stderr: string }> {
  expect(existsSync(GATEWAY) ? GATEWAY : 'run `npm run build` first').toBe(GATEWAY);
  if (tty) expect(spawnSync('script', ['--version']).error).toBeUndefined();
  const [port] = (await freePorts(1)) as [number];
  const prefix = uniquePrefix('logproc');
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['LOG_FORMAT', 'NO_COLOR', 'FORCE_COLOR', 'EMBEDDED_WORKER', 'QUEUE_REDIS_URL'])
    delete childEnv[name];
  Object.assign(childEnv, {
    REDIS_URL,
    PORT: String(port),
    QUEUE_PREFIX: `{${prefix}}`,
    SESSION_PREFIX: prefix,
    LOG_LEVEL: 'info',
    PINGONE_WEBHOOK_SECRET: SECRET,
    ADMIN_API_KEY: ADMIN_KEY,
    SESSION_TAG_SECRET: TAG_SECRET,
    TERM: 'xterm-256color',
    ...env,
  });
  const child = tty
    ? spawn('script', ['-qfec', `exec '${process.execPath}' ${GATEWAY}`, '/dev/null'], {
        env: childEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(process.execPath, [GATEWAY], {
        env: childEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await waitFor(() => stdout.includes('gateway listening on'), 'the gateway to listen', 20_000).catch(
      (err: Error) => {
        throw new Error(`${err.message}; it printed:\n${stdout}\n${stderr}`);
      },
    );
    const res = await fetch(`http://127.0.0.1:${port}/webhooks/pingone?token=query-token-value`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SECRET}`,
        cookie: `sid=${SESSION_ID}`,
        'x-request-id': 'proc-req-1',
        'content-type': 'application/json',
      },
      body: '{"not": "an event", "token": "body-token-value"}',
    });
    expect(res.status).toBe(200);
    await waitFor(() => stdout.includes('proc-req-1'), 'the request line');
  } finally {
    // The whole process group (with `script`, the gateway under it too): SIGTERM, then SIGKILL.
    const group = -child.pid!;
    try {
      process.kill(group, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(group, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 15_000);
    await closed;
    clearTimeout(timer);
    const redis = testRedis();
    await deletePrefix(redis, `{${prefix}}`);
    redis.disconnect();
  }
  return { stdout: stdout.replace(/\r/g, ''), stderr: stderr.replace(/\r/g, '') };
}

const nonEmpty = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('the gateway process', () => {
  it("not on a terminal: JSON lines, a short start-up without Nest's boot chatter, no secret", async () => {
    const { stdout, stderr } = await runGateway({}, { tty: false });
    const lines = nonEmpty(stdout).map(
      (l) => JSON.parse(l) as { level: number; msg: string; context?: string },
    );
    const listening = lines.findIndex((l) => l.msg.startsWith('gateway listening on'));
    expect(listening).toBeGreaterThanOrEqual(0);
    // Before it: Fastify's "Server listening at" per address, and what the service has to say.
    const startup = lines.slice(0, listening).filter((l) => !l.msg.startsWith('Server listening at'));
    expect(startup.length).toBeLessThanOrEqual(5);
    for (const noise of NEST_BOOT_NOISE) expect(lines.filter((l) => noise.test(l.msg))).toEqual([]);
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'request completed', reqId: 'proc-req-1', level: 30 }),
    );
    for (const secret of NEVER_LOGGED) expect(stdout + stderr).not.toContain(secret);
  }, 60_000);

  it('on a terminal: pretty, coloured lines, no secret', async () => {
    const { stdout } = await runGateway({}, { tty: true });
    expect(stdout).toMatch(ANSI);
    const lines = nonEmpty(stdout.replace(ANSI, ''));
    for (const line of lines) {
      expect(line).not.toMatch(/^\s*\{/);
      if (!line.startsWith(' ')) expect(line).toMatch(PRETTY_LINE);
    }
    expect(lines).toContainEqual(
      expect.stringMatching(/\] INFO: gateway listening on http:\/\/localhost:\d+/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /\] INFO: request completed: POST \/webhooks\/pingone -> 200 .*request proc-req-1/,
      ),
    );
    for (const noise of NEST_BOOT_NOISE) expect(lines.filter((l) => noise.test(l))).toEqual([]);
    for (const secret of NEVER_LOGGED) expect(stdout).not.toContain(secret);
  }, 60_000);

  it('on a terminal with LOG_FORMAT=json: JSON', async () => {
    const { stdout } = await runGateway({ LOG_FORMAT: 'json' }, { tty: true });
    const lines = nonEmpty(stdout).map((l) => JSON.parse(l) as { msg: string });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request completed', reqId: 'proc-req-1' }));
    for (const secret of NEVER_LOGGED) expect(stdout).not.toContain(secret);
  }, 60_000);

  it('not on a terminal with LOG_FORMAT=pretty: pretty without colour codes', async () => {
    const { stdout } = await runGateway({ LOG_FORMAT: 'pretty' }, { tty: false });
    expect(stdout).not.toMatch(ANSI);
    const lines = nonEmpty(stdout);
    for (const line of lines) if (!line.startsWith(' ')) expect(line).toMatch(PRETTY_LINE);
    expect(lines).toContainEqual(
      expect.stringMatching(/\] INFO: request completed: POST \/webhooks\/pingone/),
    );
    for (const secret of NEVER_LOGGED) expect(stdout).not.toContain(secret);
  }, 60_000);
});
