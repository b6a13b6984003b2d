import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { JWT_RESOURCE, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import { deletePrefix, freePorts, uniquePrefix, waitFor } from '../support/redis.js';

const TAG_SECRET = 'nginx-edge-tag-secret-0123456789';
const COOKIE = '__Host-session';

/** Where the NGINX binary is, or a failure that says how to get it (.ci/run installs it). */
function nginxBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('nginx is not installed: `apt-get install -y nginx` (Debian; .ci/run does it)');
  }
}

/**
 * deploy/nginx/nginx.conf, run as it is by a real NGINX (Debian's, with auth_request), in front of an
 * upstream that echoes the identity headers it receives, with the gateway answering the subrequests.
 * Only the three addresses change.
 */
describe('deploy/nginx/nginx.conf with a real NGINX', () => {
  let idp: TestIdp;
  let gw: TestGateway;
  let upstream: Server;
  let nginx: ChildProcess;
  let nginxLog = '';
  let dir: string;
  let base: string;
  let store: SessionStore;
  const prefix = uniquePrefix('nginx-edge');
  let n = 0;
  const user = () => `nginx-user-${++n}@example.com`;

  beforeAll(async () => {
    const binary = nginxBinary();
    idp = await startTestIdp();
    gw = await startGateway({
      SESSION_PREFIX: prefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      TOKEN_ISSUER: idp.issuer,
      TOKEN_AUDIENCE: JWT_RESOURCE,
      TOKEN_JWKS_URI: idp.jwksUri,
    });
    await gw.app.listen(0, '127.0.0.1');
    const gatewayPort = (gw.app.getHttpServer().address() as AddressInfo).port;
    store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET });
    upstream = createServer((req, res) => {
      const identity = Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => k.startsWith('x-auth-request-')),
      );
      res.setHeader('content-type', 'application/json').end(JSON.stringify({ path: req.url, identity }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const [nginxPort] = await freePorts(1);
    dir = mkdtempSync(join(tmpdir(), 'nginx-edge-'));
    for (const sub of ['tmp', 'tmp/body', 'tmp/proxy']) mkdirSync(join(dir, sub), { recursive: true });
    chmodSync(join(dir, 'tmp'), 0o777);
    const conf = readFileSync('deploy/nginx/nginx.conf', 'utf8')
      .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${gatewayPort};`)
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`)
      .replace('listen 127.0.0.1:8000;', `listen 127.0.0.1:${nginxPort};`);
    expect(conf).toContain(`127.0.0.1:${gatewayPort}`);
    expect(conf).toContain(`127.0.0.1:${upstreamPort}`);
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nginx.stdout!.on('data', (c: Buffer) => (nginxLog += c.toString()));
    nginx.stderr!.on('data', (c: Buffer) => (nginxLog += c.toString()));
    base = `http://127.0.0.1:${nginxPort}`;
    await waitFor(async () => (await fetch(`${base}/`)).status === 401, `NGINX to answer (${nginxLog})`);
  });
  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      nginx.kill('SIGTERM');
      await new Promise((r) => nginx.once('exit', r));
    }
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    if (gw) {
      await deletePrefix(gw.redis, prefix);
      await gw.close();
    }
    await idp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const through = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { headers });

  it('lets a live session through with its identity, and refuses it the moment its user is revoked', async () => {
    const userId = user();
    const other = await store.createSession({ userId: user(), ttlSeconds: 600 });
    const { sessionId } = await store.createSession({
      userId,
      ttlSeconds: 600,
      groups: ['staff'],
      claims: { email: 'grace@example.com', preferred_username: 'grace' },
    });
    const res = await through('/orders?page=2', {
      cookie: `${COOKIE}=${sessionId}`,
      // A client's own identity headers never reach the application.
      'x-auth-request-user': 'someone-else',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      path: '/orders?page=2',
      identity: {
        'x-auth-request-user': userId,
        'x-auth-request-email': 'grace@example.com',
        'x-auth-request-preferred-username': 'grace',
        'x-auth-request-groups': 'staff',
      },
    });
    await store.revokeUser(userId);
    expect((await through('/orders', { cookie: `${COOKIE}=${sessionId}` })).status).toBe(401);
    // Another user's session is untouched.
    expect((await through('/orders', { cookie: `${COOKIE}=${other.sessionId}` })).status).toBe(200);
  });

  it('refuses requests without a session, or with a forged one, before they reach the application', async () => {
    expect((await through('/')).status).toBe(401);
    expect((await through('/', { cookie: `${COOKIE}=forged.value` })).status).toBe(401);
  });

  it('sends a refused browser to the login, back to where it was going; others get the 401', async () => {
    const page = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
    const refused = await fetch(`${base}/orders?page=2`, { headers: page, redirect: 'manual' });
    expect(refused.status).toBe(302);
    expect(refused.headers.get('location')).toBe('/auth/login?rd=/orders?page=2');
    const { sessionId } = await store.createSession({ userId: user(), ttlSeconds: 600 });
    expect((await through('/orders', { ...page, cookie: `${COOKIE}=${sessionId}` })).status).toBe(200);
    // fetch, XHR, curl: no text/html, no redirect.
    expect((await through('/orders', { accept: 'application/json' })).status).toBe(401);
  });

  it('lets a Bearer API call through, then refuses it once the user is revoked', async () => {
    const sub = user();
    const token = await idp.jwt(sub);
    const res = await through('/api/items', { authorization: `Bearer ${token}` });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { identity: Record<string, string> }).identity['x-auth-request-user']).toBe(
      sub,
    );
    await store.revokeUser(sub);
    expect((await through('/api/items', { authorization: `Bearer ${token}` })).status).toBe(401);
  });
});
