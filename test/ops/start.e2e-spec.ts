import { describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, waitFor } from '../support/redis.js';

const GATEWAY = 'dist/apps/gateway/src/main.js';

/** `npm start`'s launcher (scripts/start.mjs) as a newcomer meets it, on a machine with no Redis running. */
describe('npm start', () => {
  it('starts a local redis-server when none answers, prints the URLs and a generated admin key, and stops it on exit', async () => {
    expect(existsSync(GATEWAY) ? GATEWAY : 'run `npm run build` first').toBe(GATEWAY);
    const [absentPort, httpPort] = await freePorts(2);
    const runDir = mkdtempSync(join(tmpdir(), 'sr-start-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      START_LOCAL_REDIS_PORT: String(absentPort),
      START_RUN_DIR: runDir,
    };
    for (const name of [
      'REDIS_URL',
      'QUEUE_REDIS_URL',
      'ADMIN_API_KEY',
      'ADMIN_API_KEYS',
      'SESSION_TAG_SECRET',
    ])
      delete env[name];
    env['PORT'] = String(httpPort);
    env['LOG_LEVEL'] = 'warn';
    const child = spawn(process.execPath, ['scripts/start.mjs'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(
        () => out.includes('Ctrl-C stops everything'),
        'the launcher to print its banner',
        30_000,
      );
      expect(out).toMatch(/a local redis-server on port \d+ \(stopped when this exits\)/);
      for (const path of ['/webhooks/pingone', '/admin/queues', '/docs', '/metrics'])
        expect(out).toContain(`http://localhost:${httpPort}${path}`);
      const key = /ADMIN_API_KEY=(\S+)/.exec(out)?.[1];
      expect(key).toBeDefined();
      const res = await fetch(`http://localhost:${httpPort}/admin/audit`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(res.status).toBe(200);
      const run = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { redisUrl: string };
      const redisPort = Number(new URL(run.redisUrl).port);
      expect(redisPort).not.toBe(absentPort);

      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      // 'close' comes once every process holding the launcher's output has exited: the gateway it
      // started inherited it.
      const closed = new Promise<number>((resolve) => child.once('close', () => resolve(Date.now())));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const exitedAt = Date.now();
      // The launcher exits last, once the service it started is gone (not still shutting down).
      expect((await closed) - exitedAt).toBeLessThan(1000);
      await waitFor(
        () =>
          spawnSync('redis-cli', ['-p', String(redisPort), 'ping'])
            .stdout.toString()
            .trim() !== 'PONG',
        'the local redis-server to stop',
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(runDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('says how to get a Redis when there is none and redis-server is not installed', async () => {
    const [absentPort] = await freePorts(1);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      START_LOCAL_REDIS_PORT: String(absentPort),
      PATH: '/nonexistent',
    };
    delete env['REDIS_URL'];
    const result = spawnSync(process.execPath, ['scripts/start.mjs'], {
      env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/redis-server is not installed/);
    expect(result.stderr).toMatch(/REDIS_URL/);
    expect(result.stderr).toMatch(/apt-get install redis-server/);
  });
});
