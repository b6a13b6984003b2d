import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { commandId, REVOCATION_PRIORITY_QUEUE } from '#revocation';
import { SessionStore } from '#session-store';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { createApp, safeReturnPath } from '../../examples/express-app/src/app.js';
import { secretHash } from '../../libs/session-store/src/keys.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { createSigner, type TestSigner } from '../support/jwt.js';
import { issuerEnv, logoutClaims, signLogoutToken } from '../support/jwt-issuers.js';
import { accountClaims, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { deletePrefix, freePorts, REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const SECRET = 'example-app-webhook-secret';
const CLIENT = { id: 'express-example', secret: 'express-example-secret-0123456789' };
/** The PingOne user of the repository's fixtures: the sub bob signs in with at the OP. */
const BOB = '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e';
const ALICE = '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69';
const CAROL = '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4';
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

/** The claims of a JWT (not verified: the test only reads what the app sent). */
const jwtClaims = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

/** The user a signed-in `sub` gets from the test OP's claims. */
const userOf = (sub: string) => {
  const claims = accountClaims(sub);
  return {
    userId: sub,
    name: claims.name,
    email: claims.email,
    preferredUsername: claims.preferred_username,
  };
};

describe('examples/express-app beside the service, signing in at an OpenID Provider', () => {
  const sessionPrefix = uniquePrefix('example-s');
  const env = {
    PINGONE_WEBHOOK_SECRET: SECRET,
    QUEUE_PREFIX: `{${uniquePrefix('example-q')}}`,
    SESSION_PREFIX: sessionPrefix,
    SESSION_TAG_SECRET: 'example-app-tag-secret-0123456789',
    CLOCK_SKEW_MS: '0',
  };
  let idp: TestIdp;
  let gw: TestGateway;
  let worker: TestWorker;
  let redis: Redis;
  let server: Server;
  let origin: string;
  let endSessionEndpoint: string;
  /** Signs the back-channel logout tokens the gateway trusts as the OP's (for this client). */
  let bcl: TestSigner;

  beforeAll(async () => {
    // The app's origin first (the OP must know its redirect_uri), then the OP, then the app on it.
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const [gatewayPort] = await freePorts(1);
    idp = await startTestIdp({
      relyingParty: {
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        redirectUri: `${origin}/callback`,
        postLogoutRedirectUri: `${origin}/`,
        // Registered for back-channel logout, the OP puts the IdP session (`sid`) in its ID tokens.
        backchannelLogoutUri: `http://127.0.0.1:${gatewayPort}/webhooks/oidc/backchannel-logout`,
      },
    });
    const metadata = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as {
      end_session_endpoint: string;
    };
    endSessionEndpoint = metadata.end_session_endpoint;
    // The gateway takes logout tokens of this OP for this client: signed with the OP's keys (its own
    // back-channel logouts) or with the test's (a logout token the test writes itself).
    bcl = await createSigner('example-bcl');
    const opKeys = (await (await fetch(idp.jwksUri)).json()) as { keys: unknown[] };
    Object.assign(env, issuerEnv('OIDC_BCL', bcl, idp.issuer, CLIENT.id), {
      OIDC_BCL_JWKS: JSON.stringify({ keys: [...bcl.jwks.keys, ...opKeys.keys] }),
    });
    gw = await startGateway(env);
    await gw.app.listen(gatewayPort!, '127.0.0.1');
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const app = createApp({
      redis,
      prefix: sessionPrefix,
      tagSecret: env.SESSION_TAG_SECRET,
      cookieSecret: 'example-app-cookie-secret',
      oidc: {
        issuer: idp.issuer,
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        redirectUri: `${origin}/callback`,
        postLogoutRedirectUri: `${origin}/`,
      },
    });
    server.on('request', app);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await idp?.stop();
    await worker?.close();
    await gw?.close();
    if (redis) {
      await deletePrefix(redis, sessionPrefix);
      redis.disconnect();
    }
  });

  const browser = () => request.agent(origin);
  type Browser = ReturnType<typeof browser>;
  const cookieOf = (res: request.Response) =>
    ([] as string[])
      .concat(res.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith('example.sid='))
      ?.split(';')[0];

  /** Starts a login in `agent`: the app's redirect to the OP (checked), and its state. */
  async function startLogin(agent: Browser, rd?: string) {
    const res = await agent.get(rd === undefined ? '/login' : `/login?rd=${encodeURIComponent(rd)}`);
    expect(res.status).toBe(302);
    const authorization = new URL(res.headers['location'] as string);
    expect(authorization.origin).toBe(idp.issuer);
    const params = authorization.searchParams;
    expect(params.get('client_id')).toBe(CLIENT.id);
    expect(params.get('redirect_uri')).toBe(`${origin}/callback`);
    expect(params.get('response_type')).toBe('code');
    expect(params.get('scope')).toBe('openid profile email');
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(params.get('state')).toEqual(expect.any(String));
    expect(params.get('nonce')).toEqual(expect.any(String));
    return { res, authorization, state: params.get('state')! };
  }

  /** Signs `sub` in at the OP from a login `agent` started; the path of the OP's redirect back. */
  async function atOp(authorization: URL, sub: string): Promise<string> {
    const back = new URL(await idp.signIn(authorization.href, sub));
    expect(back.origin + back.pathname).toBe(`${origin}/callback`);
    return `${back.pathname}${back.search}`;
  }

  /** The whole login of `sub` in `agent`: /login, the OP, /callback. Returns the callback's answer. */
  async function signIn(agent: Browser, sub: string, rd?: string) {
    const { authorization } = await startLogin(agent, rd);
    const callback = await atOp(authorization, sub);
    const res = await agent.get(callback);
    return { res, callback };
  }

  /** The keys under the test's session prefix. */
  async function keysUnderPrefix(): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${sessionPrefix}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  }

  /** Every key and value under the test's session prefix, to look for a credential in. */
  async function everythingStored(): Promise<string> {
    const out: string[] = [];
    for (const key of await keysUnderPrefix()) {
      out.push(key);
      const type = await redis.type(key);
      if (type === 'hash') out.push(...Object.values(await redis.hgetall(key)));
      else if (type === 'string') out.push((await redis.get(key)) ?? '');
      else if (type === 'zset') out.push(...(await redis.zrange(key, '0', '-1')));
    }
    return out.join('\n');
  }

  /** Follows the OP's end-session page as a browser would; where the OP sends the browser after. */
  async function endSessionAtOp(url: URL): Promise<string> {
    const page = await fetch(url, { redirect: 'manual' });
    expect(page.status).toBe(200);
    const html = await page.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    expect(action).toBe(`${idp.issuer}/session/end/confirm`);
    const fields = Object.fromEntries(
      [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );
    expect(fields['xsrf']).toEqual(expect.any(String));
    const confirmed = await fetch(action!, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: page.headers
          .getSetCookie()
          .map((c) => c.split(';')[0])
          .join('; '),
      },
      body: new URLSearchParams(fields),
    });
    expect(confirmed.status).toBeGreaterThanOrEqual(300);
    expect(confirmed.status).toBeLessThan(400);
    return new URL(confirmed.headers.get('location')!, action).href;
  }

  const postEvent = (body: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Content-Type', 'application/json')
      .send(body);

  it('refuses the protected page without a session and offers the login', async () => {
    const anon = browser();
    const denied = await anon.get('/protected');
    expect(denied.status).toBe(401);
    expect(denied.body.error).toMatch(/not logged in/);
    const home = await anon.get('/');
    expect(home.status).toBe(200);
    expect(home.text).toContain('href="/login"');
    expect(home.text).not.toContain('Logged in as');
    expect(cookieOf(home)).toBeUndefined();
  });

  it('signs a user in at the OP (code + PKCE) into a new session, and back to where they were going', async () => {
    const carol = browser();
    const { res: start, authorization } = await startLogin(carol, '/protected?tab=2#top');
    // The login's state lives in a session of its own, server side: the cookie only names it.
    const loginCookie = cookieOf(start);
    expect(loginCookie).toBeDefined();
    const callback = await atOp(authorization, CAROL);
    const res = await carol.get(callback);
    expect(res.status).toBe(302);
    expect(res.headers['location']).toBe('/protected?tab=2#top');
    // A new session id at login: no session fixation.
    const sessionCookie = cookieOf(res);
    expect(sessionCookie).toBeDefined();
    expect(sessionCookie).not.toBe(loginCookie);

    const protectedPage = await carol.get('/protected');
    expect(protectedPage.status).toBe(200);
    expect(protectedPage.body).toEqual({ message: `hello User ${CAROL}`, user: userOf(CAROL) });
    const home = await carol.get('/');
    expect(home.text).toContain(`Logged in as <strong>User ${CAROL}</strong>`);
    expect(home.text).toContain('action="/logout"');

    // The pre-login session (and its one-use state) is gone: its cookie is no one's.
    const stale = await request(origin).get('/protected').set('Cookie', loginCookie!);
    expect(stale.status).toBe(401);
    // The session store keeps no JWT (the ID token) in a key name.
    const keys = await keysUnderPrefix();
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key).not.toMatch(/eyJ/);
  });

  it('logs out: destroys the session and sends the browser to the OP with id_token_hint', async () => {
    const carol = browser();
    expect((await signIn(carol, CAROL)).res.status).toBe(302);
    const out = await carol.post('/logout').set('Accept', 'text/html');
    expect(out.status).toBe(303);
    const endSession = new URL(out.headers['location'] as string);
    expect(endSession.origin + endSession.pathname).toBe(endSessionEndpoint);
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${origin}/`);
    const hint = endSession.searchParams.get('id_token_hint')!;
    expect(jwtClaims(hint)).toMatchObject({ iss: idp.issuer, sub: CAROL, aud: CLIENT.id });
    expect(cookieOf(out)).toBe('example.sid=');
    expect((await carol.get('/protected')).status).toBe(401);
    // The OP accepts the hint and, once its (self-submitting) confirm form is sent, returns the
    // browser to the registered post-logout redirect.
    expect(await endSessionAtOp(endSession)).toBe(`${origin}/`);
    // The ID token, a credential, went with the session: nothing under the prefix holds it now.
    expect(await everythingStored()).not.toContain(hint);

    // A JSON client gets JSON, with the same end-session URL to go to.
    expect((await signIn(carol, CAROL)).res.status).toBe(302);
    const json = await carol.post('/logout').set('Accept', 'application/json');
    expect(json.status).toBe(200);
    expect(json.body).toEqual({ loggedOut: true, endSessionUrl: expect.any(String) });
    const url = new URL(json.body.endSessionUrl as string);
    expect(url.origin + url.pathname).toBe(endSessionEndpoint);
    expect(jwtClaims(url.searchParams.get('id_token_hint')!)).toMatchObject({ sub: CAROL });
    expect((await carol.get('/protected')).status).toBe(401);
  });

  it('refuses a callback without state, with a replayed state, or from another browser, and creates no session', async () => {
    // No state at all.
    const anon = browser();
    const noState = await anon.get('/callback?code=made-up');
    expect(noState.status).toBe(400);
    expect(noState.body.error).toBe('invalid_request');
    expect(cookieOf(noState)).toBeUndefined();

    const carol = browser();
    const { authorization } = await startLogin(carol);
    const callback = await atOp(authorization, CAROL);

    // Another browser (login CSRF): its own login under way has another state; the code is not redeemed.
    const other = browser();
    await startLogin(other);
    const foreign = await other.get(callback);
    expect(foreign.status).toBe(400);
    expect(cookieOf(foreign)).toBeUndefined();
    expect((await other.get('/protected')).status).toBe(401);
    // A browser with no session at all.
    const cookieless = await request(origin).get(callback);
    expect(cookieless.status).toBe(400);
    expect(cookieOf(cookieless)).toBeUndefined();

    // The browser that started it signs in, once.
    expect((await carol.get(callback)).status).toBe(302);
    expect((await carol.get('/protected')).body.user).toEqual(userOf(CAROL));
    // Replayed: the state was used. Nothing is created, and the session in place is left as it is.
    const replay = await carol.get(callback);
    expect(replay.status).toBe(400);
    expect(cookieOf(replay)).toBeUndefined();
    expect((await carol.get('/protected')).body.user).toEqual(userOf(CAROL));
    expect((await request(origin).get(callback)).status).toBe(400);

    // The OP refusing the login (e.g. the user denied consent): the state is used up, no session.
    const denied = browser();
    const { state } = await startLogin(denied);
    const deniedCallback = `/callback?${new URLSearchParams({ error: 'access_denied', state, iss: idp.issuer })}`;
    const refused = await denied.get(deniedCallback);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('access_denied');
    expect((await denied.get('/protected')).status).toBe(401);
    expect((await denied.get(deniedCallback)).status).toBe(400);
  });

  it('sends the browser back only to a path on this site: an open-redirect rd falls back to /', async () => {
    for (const rd of ['//evil.example/phish', 'https://evil.example/']) {
      const { res } = await signIn(browser(), CAROL, rd);
      expect(res.status).toBe(302);
      expect(res.headers['location']).toBe('/');
    }
    const { res: noRd } = await signIn(browser(), CAROL);
    expect(noRd.headers['location']).toBe('/');

    for (const rd of [
      '',
      'evil.example',
      '//evil.example',
      '///evil.example',
      '/\\evil.example',
      '\\\\evil.example',
      'https://evil.example',
      'javascript:alert(1)',
      '%2F%2Fevil.example',
      '/%2F/evil.example',
      '/%5Cevil.example',
      '/%09/evil.example',
      '/ok\r\nSet-Cookie: x=1',
      '/%E0%A4%A',
      `/${'a'.repeat(3000)}`,
      // Dot segments the URL parser resolves into a scheme-relative URL.
      '/.//evil.example',
      '/a/..//evil.example',
      '/%2e//evil.example',
      '/x/%2e%2e//evil.example/path',
      ['/a', '/b'],
      undefined,
    ])
      expect(safeReturnPath(rd)).toBe('/');
    expect(safeReturnPath('/orders?page=2#top')).toBe('/orders?page=2#top');
    expect(safeReturnPath('/a/../b')).toBe('/b');
  });

  it('checks its OIDC options at creation and discovers the OP lazily (503 while it cannot be reached)', async () => {
    const base = { redis, prefix: sessionPrefix, tagSecret: env.SESSION_TAG_SECRET, cookieSecret: 'c' };
    const op = { clientId: CLIENT.id, clientSecret: CLIENT.secret, redirectUri: `${origin}/callback` };
    expect(() => createApp({ ...base, oidc: { ...op, issuer: 'http://op.example.com' } })).toThrow(/https/);
    expect(() => createApp({ ...base, oidc: { ...op, issuer: 'ftp://localhost' } })).toThrow(/https/);
    expect(() => createApp({ ...base, oidc: { ...op, issuer: 'not a url' } })).toThrow(/not a URL/);
    expect(() => createApp({ ...base, oidc: { ...op, issuer: idp.issuer, clientId: '' } })).toThrow(
      /clientId is required/,
    );
    for (const issuer of ['https://auth.pingone.com/env-id/as', 'http://localhost:1', 'http://[::1]:1'])
      expect(() => createApp({ ...base, oidc: { ...op, issuer } })).not.toThrow();

    // An OP that is not there: the app starts all the same, and a login answers 503 until it is.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const downIssuer = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = createApp({ ...base, oidc: { ...op, issuer: downIssuer } });
    const login = await request(down).get('/login');
    expect(login.status).toBe(503);
    expect(login.headers['retry-after']).toBe('5');
    expect(login.body.error).toBe('temporarily_unavailable');
    expect(cookieOf(login)).toBeUndefined();
    // Logging out still ends the local session when the OP cannot be reached.
    expect((await request(down).post('/logout').set('Accept', 'text/html')).headers['location']).toBe('/');
  });

  it('a back-channel logout of one IdP session (sid only) ends that browser; bob’s other one and alice stay', async () => {
    const [bob1, bob2, alice] = [browser(), browser(), browser()];
    const logins = [];
    for (const [agent, sub] of [
      [bob1, BOB],
      [bob2, BOB],
      [alice, ALICE],
    ] as const) {
      const { res } = await signIn(agent, sub);
      expect(res.status).toBe(302);
      logins.push(res);
    }
    // The IdP session each login was born of, as the app kept it (the ID token's sid), read from the
    // session's record: named by the hash of express-session's id (the signed cookie's middle part).
    const { keys } = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: env.SESSION_TAG_SECRET });
    const record = (res: request.Response) => {
      const value = decodeURIComponent(cookieOf(res)!.slice('example.sid='.length));
      const id = value.slice(2, value.lastIndexOf('.'));
      return keys.expressSession(secretHash(id));
    };
    const idpSessions = await Promise.all(
      logins.map(async (res) => {
        const data = JSON.parse((await redis.hget(record(res), 'data'))!) as { idpSessionId?: string };
        return data.idpSessionId!;
      }),
    );
    expect(idpSessions[0]).toEqual(expect.any(String));
    expect(new Set(idpSessions).size).toBe(3);

    // The logout token names the IdP session only: the store finds bob through that session's index.
    const token = await signLogoutToken(
      bcl,
      logoutClaims({ sub: undefined, sid: idpSessions[0] }, idp.issuer, CLIENT.id),
    );
    const delivered = await request(gw.app.getHttpServer())
      .post('/webhooks/oidc/backchannel-logout')
      .type('form')
      .send({ logout_token: token });
    expect(delivered.status).toBe(200);
    const urgent = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });
    await waitForQueuesIdle([gw.queue, urgent]);

    const after = await bob1.get('/protected');
    expect(after.status).toBe(401);
    expect(await redis.exists(record(logins[0]!))).toBe(0);
    expect((await bob2.get('/protected')).body.user).toEqual(userOf(BOB));
    expect((await alice.get('/protected')).body.user).toEqual(userOf(ALICE));
  });

  it('answers 503 with Retry-After to a login a revocation of a moment ago covers, and keeps no session', async () => {
    const dave = '3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a98';
    const store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: env.SESSION_TAG_SECRET });
    // As an event's stamp, which reaches the clock skew past the event, leaves it: still ahead.
    await store.revokeUser(dave, { notBefore: Date.now() + 60_000 });
    const agent = browser();
    const { res } = await signIn(agent, dave);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(await store.listUserSessions(dave)).toEqual([]);
    expect((await agent.get('/protected')).status).toBe(401);
  });

  it('logs bob out when PingOne reports a MEMBER_OF_GROUP.CREATED event for him; alice stays', async () => {
    const bob = browser();
    const alice = browser();
    expect((await signIn(bob, BOB, '/protected')).res.headers['location']).toBe('/protected');
    expect((await signIn(alice, ALICE)).res.status).toBe(302);

    const before = await bob.get('/protected');
    expect(before.status).toBe(200);
    // The session's user is the ID token's sub: the PingOne user id the event names.
    expect(before.body.user).toEqual(userOf(BOB));
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
    expect(home.text).toContain('href="/login"');
    expect(home.text).not.toContain('Logged in as');

    // Another user's session is untouched.
    const aliceAfter = await alice.get('/protected');
    expect(aliceAfter.status).toBe(200);
    expect(aliceAfter.body.user).toEqual(userOf(ALICE));

    // After the revocation instant, bob can sign in again at the OP, and that session lives.
    await waitFor(() => Date.now() > event.recordedAt + 1, 'the revocation instant to pass');
    expect((await signIn(bob, BOB)).res.status).toBe(302);
    const again = await bob.get('/protected');
    expect(again.status).toBe(200);
    expect(again.body.user).toEqual(userOf(BOB));
    expect((await bob.get('/')).text).toContain(`Logged in as <strong>User ${BOB}</strong>`);

    // An event recorded before this login (the fixture's fixed, past recordedAt) does not end it.
    const stale = fixture.replaceAll('e1000001-0000-4000-8000-000000000002', randomUUID());
    expect((await postEvent(stale)).body).toMatchObject({ enqueued: 1 });
    await waitForQueuesIdle([gw.queue]);
    expect((await bob.get('/protected')).status).toBe(200);
  });
});
