import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { JWT_RESOURCE, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import { deletePrefix, freePorts, REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';

const EDGE = 'dist/apps/gateway/src/edge/main.js';
const TAG_SECRET = 'edge-alone-tag-secret-0123456789';
const COOKIE = 'edge_session';

interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function run(env: Record<string, string>): Child {
  const child = spawn(process.execPath, [EDGE], {
    env: { PATH: process.env['PATH'] ?? '', REDIS_URL, LOG_LEVEL: 'info', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    process: child,
    output: () => out,
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
}

/** `npm run start:edge`: forward auth and the login in a process of their own, with no queues. */
describe('the edge on its own (npm run start:edge)', () => {
  const sessionPrefix = uniquePrefix('edge-alone-s');
  const queuePrefix = uniquePrefix('edge-alone-q');
  let idp: TestIdp;
  let edge: Child;
  let origin: string;
  let redis: Redis;
  let store: SessionStore;

  beforeAll(async () => {
    expect(existsSync(EDGE) ? EDGE : 'run `npm run build` first').toBe(EDGE);
    idp = await startTestIdp();
    const [port] = await freePorts(1);
    origin = `http://127.0.0.1:${port}`;
    edge = run({
      PORT: String(port),
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      // Set, so that anything touching the queue Redis would leave keys under it.
      QUEUE_PREFIX: `{${queuePrefix}}`,
      CLOCK_SKEW_MS: '0',
      TOKEN_ISSUER: idp.issuer,
      TOKEN_AUDIENCE: JWT_RESOURCE,
      TOKEN_JWKS_URI: idp.jwksUri,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: 'edge',
      OIDC_CLIENT_SECRET: 'edge-secret',
      OIDC_REDIRECT_URI: `${origin}/auth/callback`,
      EDGE_COOKIE_NAME: COOKIE,
      EDGE_COOKIE_SECURE: 'false',
    });
    await waitFor(
      async () => (await fetch(`${origin}/health/ready`).catch(() => undefined))?.status === 200,
      'the edge to be ready',
      30_000,
    );
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET });
  }, 60_000);
  afterAll(async () => {
    if (edge?.process.exitCode === null) edge.process.kill('SIGKILL');
    if (redis) {
      await deletePrefix(redis, sessionPrefix);
      await deletePrefix(redis, `{${queuePrefix}}`);
      redis.disconnect();
    }
    await idp?.stop();
  });

  it('is ready on the session Redis alone: no queue Redis, no BullMQ keys, no webhooks or admin API', async () => {
    const ready = (await (await fetch(`${origin}/health/ready`)).json()) as {
      status: string;
      details: Record<string, unknown>;
    };
    expect(ready.status).toBe('ok');
    expect(Object.keys(ready.details).sort()).toEqual(['memory', 'redis_sessions']);
    for (const path of ['/webhooks/pingone', '/webhooks/oidc/backchannel-logout', '/admin/audit'])
      expect((await fetch(`${origin}${path}`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${origin}/metrics`)).status).toBe(200);
    expect(await redis.keys(`{${queuePrefix}}*`)).toEqual([]);
  });

  it('checks sessions and Bearer tokens, and refuses both once their user is revoked', async () => {
    const sub = 'edge-alone-user@example.com';
    const { sessionId } = await store.createSession({ userId: sub, ttlSeconds: 600, groups: ['ops'] });
    const token = await idp.jwt(sub);
    const verify = (headers: Record<string, string>) => fetch(`${origin}/auth/verify`, { headers });
    const bySession = await verify({ cookie: `${COOKIE}=${sessionId}` });
    expect(bySession.status).toBe(200);
    expect(bySession.headers.get('x-auth-request-user')).toBe(sub);
    expect(bySession.headers.get('x-auth-request-groups')).toBe('ops');
    expect((await verify({ authorization: `Bearer ${token}` })).status).toBe(200);
    // The worker of the gateway would do this on a PingOne event; the edge sees it on the next check.
    await store.revokeUser(sub);
    expect((await verify({ cookie: `${COOKIE}=${sessionId}` })).status).toBe(401);
    expect((await verify({ authorization: `Bearer ${token}` })).status).toBe(401);
  });

  it('starts the login at the OP it discovers', async () => {
    const res = await fetch(`${origin}/auth/login?rd=/reports`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const to = new URL(res.headers.get('location')!);
    expect(to.origin).toBe(idp.issuer);
    expect(to.searchParams.get('redirect_uri')).toBe(`${origin}/auth/callback`);
  });

  it('exits 0 on SIGTERM', async () => {
    edge.process.kill('SIGTERM');
    expect(await edge.exited).toBe(0);
    expect(edge.output()).toContain('edge listening on');
  });

  it('refuses to start with nothing to check, naming the setting', async () => {
    const lonely = run({ PORT: '0', SESSION_PREFIX: sessionPrefix, SESSION_TAG_SECRET: TAG_SECRET });
    const secretless = run({ PORT: '0', TOKEN_ISSUER: idp.issuer, TOKEN_JWKS_URI: idp.jwksUri });
    try {
      expect(await lonely.exited).toBe(1);
      expect(lonely.output()).toContain('OIDC_ISSUER');
      expect(await secretless.exited).toBe(1);
      expect(secretless.output()).toContain('SESSION_TAG_SECRET');
    } finally {
      // Should either start after all, it must not outlive the test.
      for (const child of [lonely, secretless])
        if (child.process.exitCode === null) child.process.kill('SIGKILL');
    }
  });
});
