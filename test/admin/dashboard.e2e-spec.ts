import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import request from 'supertest';
import { commandId, REVOCATION_PRIORITY_QUEUE } from '#revocation';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';

/**
 * The bull-board dashboard in a real headless Chromium (Debian's `chromium` package, driven by
 * playwright-core): refused without credentials, and with them it shows every queue and a job the
 * worker completed. Leaves a screenshot in artifacts/ (git-ignored) for CI to keep.
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = resolve('artifacts/dashboard.png');
const KEY = 'dashboard-admin-key-0123456789';
const READER_KEY = 'dashboard-reader-key-0123456789';
const PINGONE_SECRET = 'dashboard-pingone-secret';
const QUEUE_NAMES = ['revocations', 'revocations-priority', 'maintenance'];
const UI_TIMEOUT_MS = 15_000;

describe('queue dashboard in a browser', () => {
  const env = {
    QUEUE_PREFIX: `{${uniquePrefix('adm-dash')}}`,
    SESSION_PREFIX: uniquePrefix('adm-dash-s'),
    SESSION_TAG_SECRET: 'dashboard-tag-secret-0123456789',
    PINGONE_WEBHOOK_SECRET: PINGONE_SECRET,
    ADMIN_API_KEY: KEY,
    // A shared test Redis can be slow to answer: do not turn that into 503s.
    ENQUEUE_TIMEOUT_MS: '10000',
    ADMIN_API_KEYS: `reader:sessions:read:${createHash('sha256').update(READER_KEY).digest('hex')}`,
  };
  let gw: TestGateway;
  let worker: TestWorker | undefined;
  let browser: Browser | undefined;
  let baseUrl: string;
  /** The job the worker completed on the `revocations` queue. */
  let completedJobId: string;
  let sessionRedis: Redis | undefined;
  /** The session-store keys the executed revocation writes, to delete afterwards. */
  let sessionKeys: SessionKeys | undefined;

  beforeAll(async () => {
    // No skipping: without the browser this test fails and says how to get it.
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: install Debian's chromium (apt-get update && apt-get install -y chromium)`,
      );
    gw = await startGateway(env);
    await gw.app.listen(0, '127.0.0.1');
    baseUrl = (await gw.app.getUrl()).replace('[::1]', '127.0.0.1');
    worker = await startWorker(env);
    sessionRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    sessionKeys = new SessionKeys(
      new SessionStore({
        redis: sessionRedis,
        prefix: env.SESSION_PREFIX,
        tagSecret: env.SESSION_TAG_SECRET,
      }),
    ).user('u-dashboard');

    // A PingOne event the worker executes: a completed job on the `revocations` queue.
    const eventId = `dash-${randomUUID()}`;
    const res = await request(baseUrl)
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${PINGONE_SECRET}`)
      .set('Content-Type', 'application/json')
      .send(
        JSON.stringify([
          {
            id: eventId,
            recordedAt: new Date().toISOString(),
            action: { type: 'USER.LOCKED' },
            result: { status: 'SUCCESS' },
            resources: [{ type: 'USER', id: 'u-dashboard' }],
          },
        ]),
      );
    expect(res.body).toMatchObject({ enqueued: 1 });
    completedJobId = commandId('pingone', eventId);
    const urgent = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });
    await waitForQueuesIdle([gw.queue, urgent]);
    expect(await (await gw.queue.getJob(completedJobId))!.getState()).toBe('completed');

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await worker?.close();
    await gw?.close();
    if (sessionRedis) await sessionKeys?.delete(sessionRedis);
    sessionRedis?.disconnect();
  });

  async function withContext<T>(
    credentials: { username: string; password: string } | undefined,
    fn: (context: BrowserContext) => Promise<T>,
  ): Promise<T> {
    const context = await browser!.newContext({
      ...(credentials ? { httpCredentials: credentials } : {}),
      viewport: { width: 1280, height: 900 },
    });
    try {
      return await fn(context);
    } finally {
      await context.close();
    }
  }

  /**
   * Navigates and returns the status the browser got for `path`. Without credentials Chromium ends the
   * navigation with net::ERR_INVALID_AUTH_CREDENTIALS after the 401 (there is no one to ask), so the
   * status comes from the response the page received, not from goto().
   */
  async function visit(page: Page, path: string) {
    const url = `${baseUrl}${path}`;
    const response = page.waitForResponse((r) => r.url() === url, { timeout: UI_TIMEOUT_MS });
    const navigationError = await page.goto(url).then(
      () => undefined,
      (err: Error) => err.message,
    );
    const res = await response;
    return { status: res.status(), headers: res.headers(), navigationError };
  }

  const refusals: [string, number, { username: string; password: string } | undefined][] = [
    ['no credentials', 401, undefined],
    ['a wrong key', 401, { username: 'admin', password: 'not-the-key-0123456789' }],
    ['a key without queues:admin', 403, { username: 'reader', password: READER_KEY }],
  ];

  it.each(refusals)('is refused with %s (%d)', async (_what, status, credentials) => {
    await withContext(credentials, async (context) => {
      const page = await context.newPage();
      // The page, the board's API and a queue's page are all behind the check.
      for (const path of [
        '/admin/queues',
        '/admin/queues/api/queues',
        '/admin/queues/queue/revocations?status=completed',
      ]) {
        const res = await visit(page, path);
        expect({ path, status: res.status }).toEqual({ path, status });
        if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
        if (res.navigationError) expect(res.navigationError).toMatch(/ERR_INVALID_AUTH_CREDENTIALS/);
        // After a failed navigation Chromium is still swapping in its error page for a moment.
        const html = await waitFor(() => page.content(), 'the page content', UI_TIMEOUT_MS);
        for (const text of ['revocations-priority', completedJobId]) expect(html).not.toContain(text);
      }
    });
  });

  it('shows the queues and a completed job with credentials, and saves a screenshot', async () => {
    await withContext({ username: 'admin', password: KEY }, async (context) => {
      const page = await context.newPage();
      const pageErrors: string[] = [];
      const failedResponses: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));
      page.on('response', (r) => {
        if (r.status() >= 400) failedResponses.push(`${r.status()} ${r.url()}`);
      });

      expect((await visit(page, '/admin/queues')).status).toBe(200);
      await expect(page.title()).resolves.toMatch(/Session Revoker/);
      // Every queue: a card on the overview and an entry in the sidebar.
      const sidebar = page.locator('#bull-board-sidebar');
      for (const name of QUEUE_NAMES) {
        await page
          .getByRole('main')
          .getByRole('link', { name, exact: true })
          .waitFor({ timeout: UI_TIMEOUT_MS });
        await sidebar.getByRole('link', { name, exact: true }).waitFor({ timeout: UI_TIMEOUT_MS });
      }

      // As a person would: open the revocations queue, then its Completed tab.
      await sidebar.getByRole('link', { name: 'revocations', exact: true }).click();
      await page.waitForURL(/\/admin\/queues\/queue\/revocations/, { timeout: UI_TIMEOUT_MS });
      await page.getByRole('link', { name: /^completed/i }).click();
      await page.waitForURL(/status=completed/, { timeout: UI_TIMEOUT_MS });
      await page.getByText(completedJobId).first().waitFor({ timeout: UI_TIMEOUT_MS });
      // The card shows the command the worker ran (ids only, never a secret).
      await waitFor(
        async () => (await page.locator('body').innerText()).includes('u-dashboard'),
        'the job data on the completed tab',
        UI_TIMEOUT_MS,
      );

      mkdirSync(resolve('artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

      expect(pageErrors).toEqual([]);
      expect(failedResponses).toEqual([]);
    });
  });
});
