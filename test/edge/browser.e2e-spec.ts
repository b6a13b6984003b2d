import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { REVOCATION_PRIORITY_QUEUE, type RevocationCommand } from '#revocation';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { accountClaims, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import { deletePrefix, freePorts, uniquePrefix, waitFor } from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

/**
 * A real headless Chromium (Debian's `chromium`, driven by playwright-core) signs in through a real
 * NGINX running deploy/nginx/nginx.conf: NGINX sends it to the edge's login (the gateway, an OpenID
 * Connect relying party on NGINX's origin), the OP (oidc-provider) shows its login and consent pages,
 * and the browser comes back to the application with its identity. Then each way Session Revoker
 * hears that a user must go (the OP's back-channel logout, a PingOne webhook, an admin revoke) ends
 * that user's access at NGINX within a second, while another user stays signed in; /auth/logout
 * through NGINX ends the session too.
 */

const CHROMIUM = '/usr/bin/chromium';
const COOKIE = 'session';
const CLIENT = { id: 'edge-browser-app', secret: 'edge-browser-app-secret-0123456789' };
const TAG_SECRET = 'edge-browser-tag-secret-0123456789';
const PINGONE_SECRET = 'edge-browser-pingone-secret-0123456789';
const ADMIN_KEY = 'edge-browser-admin-key-0123456789';
/** How soon a revocation must reach NGINX: the next request after it, at most this much later. */
const REVOKED_WITHIN_MS = 1000;
const UI_TIMEOUT_MS = 15_000;

/** Where the NGINX binary is, or a failure that says how to get it (.ci/run installs it). */
function nginxBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('nginx is not installed: `apt-get install -y nginx` (Debian; .ci/run does it)');
  }
}

interface Echo {
  path: string;
  identity: Record<string, string>;
}

describe('a browser signed in through NGINX (deploy/nginx/nginx.conf) and the edge login', () => {
  const prefix = uniquePrefix('edge-browser');
  let idp: TestIdp;
  let gw: TestGateway;
  let worker: TestWorker | undefined;
  let upstream: Server | undefined;
  let nginx: ChildProcess | undefined;
  let nginxLog = '';
  let dir: string | undefined;
  let browser: Browser | undefined;
  let store: SessionStore;
  let urgent: Queue;
  /** NGINX's origin: the browser's only way in. */
  let base: string;
  /** The gateway, directly: where PingOne, the OP's back-channel logout and admins reach it. */
  let gateway: string;
  /** Stays signed in while the others are revoked; signs out at the end. */
  let bystander: { context: BrowserContext; page: Page; sub: string };

  beforeAll(async () => {
    // No skipping: without the browser this test fails and says how to get it.
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: install Debian's chromium (apt-get update && apt-get install -y chromium)`,
      );
    const binary = nginxBinary();
    const [nginxPort, gatewayPort] = await freePorts(2);
    base = `http://127.0.0.1:${nginxPort}`;
    gateway = `http://127.0.0.1:${gatewayPort}`;
    idp = await startTestIdp({
      relyingParty: {
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        // The browser's way back is through NGINX; the OP's back-channel goes to the gateway itself.
        redirectUri: `${base}/auth/callback`,
        postLogoutRedirectUri: `${base}/signed-out`,
        backchannelLogoutUri: `${gateway}/webhooks/oidc/backchannel-logout`,
      },
    });
    const env = {
      SESSION_PREFIX: prefix,
      QUEUE_PREFIX: `{${uniquePrefix('edge-browser-q')}}`,
      SESSION_TAG_SECRET: TAG_SECRET,
      CLOCK_SKEW_MS: '0',
      // A shared test Redis can be slow to answer: do not turn that into 503s.
      ENQUEUE_TIMEOUT_MS: '10000',
      PINGONE_WEBHOOK_SECRET: PINGONE_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: `${base}/auth/callback`,
      OIDC_POST_LOGOUT_REDIRECT_URI: `${base}/signed-out`,
      EDGE_COOKIE_SECURE: 'false',
      OIDC_BCL_ISSUER: idp.issuer,
      OIDC_BCL_AUDIENCE: CLIENT.id,
      OIDC_BCL_JWKS_URI: idp.jwksUri,
      ADMIN_API_KEYS: `edge-browser:sessions:revoke:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
    };
    gw = await startGateway(env);
    await gw.app.listen(gatewayPort!, '127.0.0.1');
    store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET });
    urgent = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });
    worker = await startWorker(env);

    upstream = createServer((req, res) => {
      const identity = Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => k.startsWith('x-auth-request-')),
      );
      res.setHeader('content-type', 'application/json').end(JSON.stringify({ path: req.url, identity }));
    });
    await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
    const upstreamPort = (upstream.address() as AddressInfo).port;

    dir = mkdtempSync(join(tmpdir(), 'edge-browser-'));
    for (const sub of ['tmp', 'tmp/body', 'tmp/proxy']) mkdirSync(join(dir, sub), { recursive: true });
    chmodSync(join(dir, 'tmp'), 0o777);
    const conf = readFileSync('deploy/nginx/nginx.conf', 'utf8')
      .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${gatewayPort};`)
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`)
      .replace('listen 127.0.0.1:8000;', `listen 127.0.0.1:${nginxPort};`);
    expect(conf).toContain(`127.0.0.1:${gatewayPort}`);
    expect(conf).toContain(`127.0.0.1:${upstreamPort}`);
    expect(conf).toContain(`127.0.0.1:${nginxPort}`);
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nginx.stdout!.on('data', (c: Buffer) => (nginxLog += c.toString()));
    nginx.stderr!.on('data', (c: Buffer) => (nginxLog += c.toString()));
    await waitFor(async () => (await fetch(`${base}/`)).status === 401, `NGINX to answer (${nginxLog})`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // playwright-core gives the browser a new, empty user-data-dir of its own.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx!.once('exit', r));
      nginx.kill('SIGTERM');
      await exited;
    }
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    await worker?.close();
    if (gw) {
      await deletePrefix(gw.redis, prefix);
      await gw.close();
    }
    await idp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A browser context of its own (its own cookies: its own OP session); nothing leaves 127.0.0.1. */
  async function newContext(): Promise<BrowserContext> {
    const context = await browser!.newContext();
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    // The OP's pages import web fonts: nothing here may wait on the internet.
    await context.route(
      (url) => url.hostname !== '127.0.0.1',
      (route) => route.abort(),
    );
    return context;
  }

  /** What the application echoed: the X-Auth-Request-* headers NGINX passed it. */
  async function echoed(page: Page): Promise<Echo> {
    // Chromium shows a JSON answer as text in a <pre> (its viewer may add a pretty-print control).
    return JSON.parse((await page.locator('pre').first().textContent()) ?? '') as Echo;
  }

  /**
   * Opens NGINX's /app/page in a new page of `context`: NGINX sends the browser to /auth/login, the
   * gateway to the OP, where it signs in as `sub` (any password) and consents; the OP sends it back
   * to /auth/callback (the session cookie) and on to the page it asked for.
   */
  async function signIn(context: BrowserContext, sub: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${base}/app/page`, { waitUntil: 'domcontentloaded' });
    expect(new URL(page.url()).origin).toBe(idp.issuer);
    await page.fill('input[name="login"]', sub);
    await page.fill('input[name="password"]', `password of ${sub}`);
    await Promise.all([
      page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached' }),
      page.click('button[type="submit"]'),
    ]);
    await Promise.all([
      page.waitForURL(`${base}/app/page`, { waitUntil: 'domcontentloaded' }),
      page.click('button[type="submit"]'),
    ]);
    const cookie = (await context.cookies(base)).find((c) => c.name === COOKIE);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    return page;
  }

  /** The identity the application sees for `sub` (accountClaims: the OP's claims of each account). */
  const identityOf = (sub: string) => {
    const claims = accountClaims(sub);
    return {
      'x-auth-request-user': sub,
      'x-auth-request-email': claims.email,
      'x-auth-request-preferred-username': claims.preferred_username,
      'x-auth-request-groups': claims.groups.join(','),
    };
  };

  /** The bystander's page, reloaded in the browser: still signed in, still themselves. */
  async function expectStillSignedIn(): Promise<void> {
    const res = await bystander.page.goto(`${base}/app/page?still=1`, { waitUntil: 'domcontentloaded' });
    expect(res?.status()).toBe(200);
    expect(bystander.page.url()).toBe(`${base}/app/page?still=1`);
    expect(await echoed(bystander.page)).toEqual({
      path: '/app/page?still=1',
      identity: identityOf(bystander.sub),
    });
  }

  /**
   * Requests NGINX's /app/page with `context`'s cookies, as the browser's next navigation would
   * (without following redirects), until NGINX sends it to the login instead of the application;
   * fails if that takes longer than REVOKED_WITHIN_MS. An API-style request is then refused with 401.
   */
  async function expectRefusedWithin(context: BrowserContext, since: number): Promise<void> {
    for (;;) {
      const res = await context.request.get(`${base}/app/page`, {
        maxRedirects: 0,
        headers: { accept: 'text/html,application/xhtml+xml' },
      });
      if (res.status() === 302) {
        expect(res.headers()['location']).toBe('/auth/login?rd=/app/page');
        break;
      }
      expect(res.status()).toBe(200);
      if (Date.now() - since > REVOKED_WITHIN_MS)
        throw new Error(`NGINX still let the session through ${Date.now() - since} ms after its revocation`);
    }
    const api = await context.request.get(`${base}/app/page`, {
      maxRedirects: 0,
      headers: { accept: 'application/json' },
    });
    expect(api.status()).toBe(401);
  }

  /** Every command the gateway has queued (both queues, any state). */
  async function commands(): Promise<RevocationCommand[]> {
    const states = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'] as const;
    const jobs = [...(await gw.queue.getJobs([...states])), ...(await urgent.getJobs([...states]))];
    return jobs.map((j) => j.data as RevocationCommand);
  }

  it('signs a browser in through NGINX and the OP: it reaches the application with its identity', async () => {
    const context = await newContext();
    const sub = 'ada';
    const page = await signIn(context, sub);
    expect(await echoed(page)).toEqual({ path: '/app/page', identity: identityOf(sub) });
    // The page, as the browser shows it, names the user.
    expect(await page.locator('body').innerText()).toContain('"x-auth-request-user":"ada"');
    bystander = { context, page, sub };
    await expectStillSignedIn();
  }, 60_000);

  it("the OP's back-channel logout of a user's IdP session ends their access at NGINX", async () => {
    const context = await newContext();
    const sub = 'grace';
    await signIn(context, sub);
    const [session] = await store.listUserSessions(sub);
    const sid = session?.idpSessionId;
    expect(sid).toEqual(expect.any(String));
    // Signed out within the second of the login, on purpose: a logout token's iat has whole seconds,
    // and the revocation must still reach a session born earlier in that second.
    // The user signs out at the OP (its end_session endpoint, confirmed): the OP POSTs a logout
    // token for their sid to the gateway's back-channel logout endpoint before it answers.
    const page = await context.newPage();
    const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as {
      end_session_endpoint: string;
    };
    await page.goto(discovery.end_session_endpoint, { waitUntil: 'domcontentloaded' });
    const since = Date.now();
    await Promise.all([
      page.waitForURL((url) => url.pathname.includes('/session/end/success'), { waitUntil: 'commit' }),
      page.click('button[name="logout"][value="yes"]'),
    ]);
    await expectRefusedWithin(context, since);
    // It was the OP's logout token that did it, delivered to the gateway.
    expect(await commands()).toContainEqual(
      expect.objectContaining({
        source: 'oidc_bcl',
        target: expect.objectContaining({ type: 'idp_session', idpSessionId: sid }),
      }),
    );
    await expectStillSignedIn();
    await context.close();
  }, 60_000);

  it('a PingOne USER.LOCKED webhook ends the user’s access at NGINX', async () => {
    const context = await newContext();
    const sub = 'linus';
    await signIn(context, sub);
    const since = Date.now();
    const res = await fetch(`${gateway}/webhooks/pingone`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PINGONE_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: `evt-${randomUUID()}`,
        recordedAt: new Date().toISOString(),
        action: { type: 'USER.LOCKED' },
        resources: [{ type: 'USER', id: sub }],
        result: { status: 'SUCCESS' },
      }),
    });
    expect(res.status).toBeLessThan(300);
    await expectRefusedWithin(context, since);
    await expectStillSignedIn();
    await context.close();
  }, 60_000);

  it('an admin revoke ends the user’s access at NGINX', async () => {
    const context = await newContext();
    const sub = 'barbara';
    await signIn(context, sub);
    const since = Date.now();
    const res = await fetch(`${gateway}/admin/users/${sub}/revoke?wait=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'edge browser test' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ revoked: 1 });
    await expectRefusedWithin(context, since);
    await expectStillSignedIn();
    await context.close();
  }, 60_000);

  it('signs out through NGINX: the session is gone and the next request goes to the login', async () => {
    const { context, page } = bystander;
    const cookie = (await context.cookies(base)).find((c) => c.name === COOKIE)!;
    // /auth/logout ends the session and sends the browser to the OP's end_session endpoint.
    await page.goto(`${base}/auth/logout`, { waitUntil: 'domcontentloaded' });
    expect(new URL(page.url()).origin).toBe(idp.issuer);
    expect((await context.cookies(base)).find((c) => c.name === COOKIE)).toBeUndefined();
    // The session itself is gone, not only the cookie.
    const replayed = await fetch(`${base}/app/page`, { headers: { cookie: `${COOKIE}=${cookie.value}` } });
    expect(replayed.status).toBe(401);
    expect(await store.listUserSessions(bystander.sub)).toEqual([]);
    await expectRefusedWithin(context, Date.now());
    // Confirmed at the OP, the browser comes back to NGINX (/signed-out), which sends it to the login:
    // the OP's login page, its session there ended too.
    await Promise.all([
      page.waitForURL((url) => url.origin === idp.issuer && url.pathname.startsWith('/interaction/'), {
        waitUntil: 'domcontentloaded',
      }),
      page.click('button[name="logout"][value="yes"]'),
    ]);
    expect(await page.locator('input[name="login"]').count()).toBe(1);
    await context.close();
  }, 60_000);
});
