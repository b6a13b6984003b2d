import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { commandId } from '#revocation';
import { createApp, USERS } from '../../examples/express-app/src/app.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const SECRET = 'example-app-webhook-secret';
const BOB = '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e';
const ALICE = '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69';
const fixture = readFileSync('test/fixtures/pingone/member-of-group-created.json', 'utf8');

/** The fixture's MEMBER_OF_GROUP.CREATED event for bob, recorded now, under a fresh id. */
function groupEventNow(): { id: string; recordedAt: number; body: string } {
  const event = JSON.parse(fixture) as Record<string, unknown> & { _links: { self: { href: string } } };
  const id = randomUUID();
  const recordedAt = Date.now();
  event['id'] = id;
  event['recordedAt'] = new Date(recordedAt).toISOString();
  event['createdAt'] = new Date(recordedAt).toISOString();
  event._links.self.href = event._links.self.href.replace(/[^/]+$/, id);
  return { id, recordedAt, body: JSON.stringify(event) };
}

describe('examples/express-app beside the service', () => {
  const sessionPrefix = uniquePrefix('example-s');
  const env = {
    PINGONE_WEBHOOK_SECRET: SECRET,
    QUEUE_PREFIX: `{${uniquePrefix('example-q')}}`,
    SESSION_PREFIX: sessionPrefix,
    SESSION_TAG_SECRET: 'example-app-tag-secret-0123456789',
    CLOCK_SKEW_MS: '0',
  };
  let gw: TestGateway;
  let worker: TestWorker;
  let redis: Redis;
  let server: Server;

  beforeAll(async () => {
    gw = await startGateway(env);
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const app = createApp({
      redis,
      prefix: sessionPrefix,
      tagSecret: env.SESSION_TAG_SECRET,
      cookieSecret: 'example-app-cookie-secret',
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
    await worker?.close();
    await gw?.close();
    if (redis) {
      await deletePrefix(redis, sessionPrefix);
      redis.disconnect();
    }
  });

  const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const browser = () => request.agent(url());
  const login = (agent: ReturnType<typeof browser>, username: string) =>
    agent.post('/login').type('form').send({ username }).set('Accept', 'application/json');
  const postEvent = (body: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Content-Type', 'application/json')
      .send(body);

  it('maps the fixture users to the ids the PingOne events carry', () => {
    expect(USERS['bob']).toBe(BOB);
    expect(USERS['alice']).toBe(ALICE);
  });

  it('refuses the protected page without a session and shows the login form', async () => {
    const anon = browser();
    const denied = await anon.get('/protected');
    expect(denied.status).toBe(401);
    expect(denied.body.error).toMatch(/not logged in/);
    const home = await anon.get('/');
    expect(home.status).toBe(200);
    expect(home.text).toContain('action="/login"');
    const unknown = await login(anon, 'mallory');
    expect(unknown.status).toBe(401);
    expect(unknown.headers['set-cookie']).toBeUndefined();
  });

  it('logs in with a form (redirect) and out again', async () => {
    const carol = browser();
    const res = await carol
      .post('/login')
      .type('form')
      .send({ username: 'carol' })
      .set('Accept', 'text/html');
    expect(res.status).toBe(303);
    expect(res.headers['location']).toBe('/');
    expect((await carol.get('/')).text).toContain('Logged in as <strong>carol</strong>');
    expect((await carol.get('/protected')).status).toBe(200);
    const out = await carol.post('/logout').set('Accept', 'application/json');
    expect(out.body).toEqual({ loggedOut: true });
    expect((await carol.get('/protected')).status).toBe(401);
  });

  it('logs bob out when PingOne reports a MEMBER_OF_GROUP.CREATED event for him; alice stays', async () => {
    const bob = browser();
    const alice = browser();
    const bobLogin = await login(bob, 'bob');
    expect(bobLogin.status).toBe(200);
    expect(bobLogin.body).toEqual({ username: 'bob', userId: BOB });
    expect((await login(alice, 'alice')).status).toBe(200);

    const before = await bob.get('/protected');
    expect(before.status).toBe(200);
    expect(before.body.user).toEqual({ username: 'bob', userId: BOB });
    expect((await alice.get('/protected')).status).toBe(200);

    // Recorded after the login completed: the revocation covers what was issued up to that instant.
    const event = groupEventNow();
    const posted = await postEvent(event.body);
    expect(posted.status).toBe(200);
    expect(posted.body).toMatchObject({ enqueued: 1 });
    await waitForQueuesIdle([gw.queue]);
    const job = await gw.queue.getJob(commandId('pingone', event.id));
    expect(await job?.getState()).toBe('completed');

    const after = await bob.get('/protected');
    expect(after.status).toBe(401);
    expect(after.body.error).toMatch(/revoked/);
    const home = await bob.get('/');
    expect(home.text).toContain('action="/login"');
    expect(home.text).not.toContain('Logged in as');

    // Another user's session is untouched.
    const aliceAfter = await alice.get('/protected');
    expect(aliceAfter.status).toBe(200);
    expect(aliceAfter.body.user).toEqual({ username: 'alice', userId: ALICE });

    // After the revocation instant, bob can log in again, and that session lives.
    while (Date.now() <= event.recordedAt + 1) await new Promise((r) => setTimeout(r, 2));
    expect((await login(bob, 'bob')).status).toBe(200);
    const again = await bob.get('/protected');
    expect(again.status).toBe(200);
    expect(again.body.user).toEqual({ username: 'bob', userId: BOB });
    expect((await bob.get('/')).text).toContain('Logged in as <strong>bob</strong>');

    // An event recorded before this login (the fixture's fixed, past recordedAt) does not end it.
    const stale = fixture.replaceAll('e1000001-0000-4000-8000-000000000002', randomUUID());
    expect((await postEvent(stale)).body).toMatchObject({ enqueued: 1 });
    await waitForQueuesIdle([gw.queue]);
    expect((await bob.get('/protected')).status).toBe(200);
  });
});
