import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { REVOCATION_PRIORITY_QUEUE } from '#revocation';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { uniquePrefix } from '../support/redis.js';

/**
 * Cross-site request forgery against the admin API, in a real headless Chromium: an administrator
 * who logged in to the dashboard (HTTP Basic, the API key as password) then visits another site. That
 * site's auto-submitted HTML form (enctype text/plain, which a browser sends cross-site without a CORS
 * preflight) must not revoke anyone with the credentials the browser cached for the gateway.
 */

const CHROMIUM = '/usr/bin/chromium';
const KEY = 'sec-csrf-admin-key-0123456789';
const TIMEOUT_MS = 15_000;

describe('admin API against a cross-site form (CSRF)', () => {
  let gw: TestGateway;
  let urgent: Queue;
  let browser: Browser | undefined;
  let evil: Server;
  let gatewayUrl: string;
  let evilUrl: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('sec-csrf')}}`,
      ADMIN_API_KEY: KEY,
      ENQUEUE_TIMEOUT_MS: '15000',
    });
    await gw.app.listen(0, '127.0.0.1');
    gatewayUrl = `http://127.0.0.1:${(gw.app.getHttpServer().address() as AddressInfo).port}`;
    urgent = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });

    // Another origin (another host name and port): the attacker's page.
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html>
<form id="f" method="POST" enctype="text/plain" action="${gatewayUrl}/admin/users/victim/revoke">
  <input type="hidden" name='{"reason":"csrf' value='"}'>
</form>
<script>document.getElementById('f').submit();</script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (evil?.listening) {
      evil.closeAllConnections();
      await new Promise((resolve) => evil.close(resolve));
    }
    await gw?.close();
  });

  /** Loads the attacker's page in `page` and returns the gateway's answer to its form and the headers sent. */
  async function submitEvilForm(page: Page) {
    const posted = page.waitForResponse((r) => r.url().endsWith('/admin/users/victim/revoke'), {
      timeout: TIMEOUT_MS,
    });
    await page.goto(evilUrl, { timeout: TIMEOUT_MS });
    const res = await posted;
    return { status: res.status(), sent: await res.request().allHeaders() };
  }

  const victimRevocations = async () =>
    (await urgent.getJobs(['waiting', 'prioritized', 'delayed']))
      .filter((j) => j.data?.target?.userId === 'victim')
      .map((j) => ({ reason: j.data.reason, actor: j.data.actor }));

  it('control: the same form from a browser that never logged in to the dashboard gets 401 and revokes nothing', async () => {
    const context = await browser!.newContext({ httpCredentials: { username: 'admin', password: KEY } });
    try {
      const { status, sent } = await submitEvilForm(await context.newPage());
      expect({ status, credentials: sent['authorization'] ?? null, site: sent['sec-fetch-site'] }).toEqual({
        status: 401,
        credentials: null,
        site: 'cross-site',
      });
      expect(await victimRevocations()).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('does not revoke when a cross-site text/plain form is posted with the Basic credentials the browser cached for the dashboard', async () => {
    const context = await browser!.newContext({ httpCredentials: { username: 'admin', password: KEY } });
    try {
      const page = await context.newPage();
      // The administrator uses the dashboard: the browser answers its Basic challenge and caches it.
      const board = await page.goto(`${gatewayUrl}/admin/queues`, { timeout: TIMEOUT_MS });
      expect(board?.status()).toBe(200);

      // Then visits the attacker's page, which posts the form to the gateway.
      const { status, sent } = await submitEvilForm(page);
      expect({
        status,
        browserSentCachedCredentials: Boolean(sent['authorization']),
        site: sent['sec-fetch-site'],
        contentType: sent['content-type'],
        revocationsQueued: await victimRevocations(),
      }).toEqual({
        status: expect.any(Number),
        browserSentCachedCredentials: expect.any(Boolean),
        site: 'cross-site',
        contentType: 'text/plain',
        revocationsQueued: [],
      });
    } finally {
      await context.close();
    }
  });
});
