import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { stringify as toYaml } from 'yaml';
import { startGateway, type TestGateway } from '../support/gateway.js';
import {
  createSigner,
  hs256WithPublicKey,
  nowSec,
  signJwt,
  type TestSigner,
  unsignedJwt,
} from '../support/jwt.js';
import {
  BCL_AUD as AUD,
  BCL_EVENT,
  BCL_ISS as ISS,
  issuerEnv,
  logoutClaims as claims,
  signLogoutToken as logoutToken,
  trustedIssuer,
} from '../support/jwt-issuers.js';
import { uniquePrefix } from '../support/redis.js';

const PATH = '/webhooks/oidc/backchannel-logout';
const ISS_A = 'https://pingfederate-a.example.com';
const ISS_B = 'https://pingam-b.example.com/oauth2';
/** An issuer whose RSA key names no algorithm: only its configured `algorithms` (PS256) restrict it. */
const ISS_C = 'https://pingfederate-c.example.com';
const RSA_C = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ISS_REMOTE = 'https://remote.example.com';

type Claims = Record<string, unknown>;

/** A long enqueue deadline: the shared test Redis can stall for seconds under other suites' load. */
const SLOW_REDIS_OK = '15000';

function post(gw: TestGateway, token: string) {
  return request(gw.app.getHttpServer())
    .post(PATH)
    .type('form')
    .send(`logout_token=${encodeURIComponent(token)}`);
}

function expectRejected(res: request.Response) {
  expect(res.status).toBe(400);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
  expect(res.body.error_description.length).toBeGreaterThan(0);
}

/** Starts two gateways together; when one fails, closes the other before failing. */
async function startPair(
  first: Promise<TestGateway>,
  second: Promise<TestGateway>,
): Promise<[TestGateway, TestGateway]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === 'fulfilled' && b.status === 'fulfilled') return [a.value, b.value];
  if (a.status === 'fulfilled') await a.value.close();
  if (b.status === 'fulfilled') await b.value.close();
  throw (a.status === 'rejected' ? a : (b as PromiseRejectedResult)).reason;
}

/** Removes the jobs of earlier tests (each test uses its own jti, so their dedup marks do not matter). */
async function reset(gw: TestGateway) {
  await gw.queue.obliterate({ force: true });
}

describe('POST /webhooks/oidc/backchannel-logout', () => {
  let signer: TestSigner;
  let other: TestSigner;
  let signerA: TestSigner;
  let signerB: TestSigner;
  let gw: TestGateway;
  let multi: TestGateway;
  let dir: string;

  beforeAll(async () => {
    [signer, other, signerA, signerB] = await Promise.all([
      createSigner('bcl-key-1'),
      createSigner('other-key'),
      createSigner('key-a', 'ES256'),
      createSigner('key-b', 'PS256'),
    ]);
    dir = mkdtempSync(join(tmpdir(), 'sr-bcl-'));
    const configFile = join(dir, 'issuers.yaml');
    writeFileSync(
      configFile,
      toYaml({
        oidcIssuers: [
          trustedIssuer(signerA, ISS_A, 'app-a'),
          trustedIssuer(signerB, ISS_B, ['app-b', 'app-b2']),
          {
            issuer: ISS_C,
            audience: 'app-c',
            jwks: { keys: [{ ...RSA_C.publicKey.export({ format: 'jwk' }), kid: 'key-c' }] },
            algorithms: ['PS256'],
          },
        ],
      }),
    );
    [gw, multi] = await startPair(
      startGateway({
        ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
        QUEUE_PREFIX: `{${uniquePrefix('bcl')}}`,
        ...issuerEnv('OIDC_BCL', signer, ISS, AUD),
      }),
      startGateway({
        ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
        QUEUE_PREFIX: `{${uniquePrefix('bcl-multi')}}`,
        CONFIG_FILE: configFile,
      }),
    );
  });

  afterAll(async () => {
    await Promise.all([gw?.close(), multi?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  describe('accepted tokens', () => {
    beforeEach(() => reset(gw));

    it('revokes the IdP session named by sid, with the user when sub is present', async () => {
      const c = claims({ sub: 'user-42', sid: 'pf-session-42' });
      const before = Date.now();
      const res = await post(gw, await logoutToken(signer, c));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.text).toBe('');
      const commands = await gw.commands();
      expect(commands).toEqual([
        expect.objectContaining({
          target: { type: 'idp_session', idpSessionId: 'pf-session-42', userId: 'user-42' },
          source: 'oidc_bcl',
          eventType: 'backchannel-logout',
          eventId: `${ISS}#${c['jti']}`,
          notBefore: expect.any(Number),
        }),
      ]);
      expect(commands[0]!.receivedAt).toBeGreaterThanOrEqual(before);
      // As of the end of the token's second (iat has whole seconds), never later than its arrival.
      expect(commands[0]!.notBefore).toBe(
        Math.min((c['iat'] as number) * 1000 + 999, commands[0]!.receivedAt),
      );
    });

    it('revokes the IdP session alone when only sid is present', async () => {
      const res = await post(gw, await logoutToken(signer, claims({ sub: undefined, sid: 'pf-session-7' })));
      expect(res.status).toBe(200);
      expect((await gw.commands()).map((c) => c.target)).toEqual([
        { type: 'idp_session', idpSessionId: 'pf-session-7' },
      ]);
    });

    it('revokes all of the user when only sub is present', async () => {
      const c = claims({ sub: 'user-77', sid: undefined, iat: nowSec() - 30 });
      const res = await post(gw, await logoutToken(signer, c));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(await gw.commands()).toEqual([
        expect.objectContaining({
          target: { type: 'user', userId: 'user-77' },
          source: 'oidc_bcl',
          eventId: `${ISS}#${c['jti']}`,
          // 30 s ago: the end of that second, well before its arrival.
          notBefore: (c['iat'] as number) * 1000 + 999,
        }),
      ]);
    });

    it.each([
      ['no typ header', { typ: undefined }],
      ['typ application/logout+jwt', { typ: 'application/logout+jwt' }],
      ['typ in another case', { typ: 'Logout+JWT' }],
    ])('accepts a token with %s', async (_name, header) => {
      const res = await post(gw, await logoutToken(signer, claims(), header));
      expect(res.status).toBe(200);
      expect(await gw.commands()).toHaveLength(1);
    });

    it('accepts an iat up to the skew ahead of our clock, and one almost the oldest accepted', async () => {
      // Defaults: a 24 h window, 60 s skew, so the oldest accepted iat is 24 h - 2 min ago (less the skew).
      const now = nowSec();
      for (const iat of [now + 45, now - 86_400 + 200]) {
        const res = await post(gw, await logoutToken(signer, claims({ iat, exp: now + 600 })));
        expect({ iat: iat - now, status: res.status }).toEqual({ iat: iat - now, status: 200 });
      }
      expect(await gw.commands()).toHaveLength(2);
    });

    it('accepts an audience array that holds the client, and a charset on the content type', async () => {
      const token = await logoutToken(signer, claims({ aud: ['someone-else', AUD] }));
      const res = await request(gw.app.getHttpServer())
        .post(PATH)
        .set('Content-Type', 'application/x-www-form-urlencoded; charset=UTF-8')
        .send(`logout_token=${encodeURIComponent(token)}`);
      expect(res.status).toBe(200);
      expect(await gw.commands()).toHaveLength(1);
    });

    it('acts once on a replayed jti', async () => {
      const c = claims();
      const token = await logoutToken(signer, c);
      expect((await post(gw, token)).status).toBe(200);
      const again = await post(gw, token);
      expect(again.status).toBe(200);
      expect(again.headers['cache-control']).toBe('no-store');
      // Re-signed with the same jti (another iat): still the same logout.
      const resigned = await post(gw, await logoutToken(signer, { ...c, iat: nowSec() - 5 }));
      expect(resigned.status).toBe(200);
      expect(await gw.commands()).toHaveLength(1);

      // Even once the job itself is gone.
      await gw.queue.obliterate({ force: true });
      expect((await post(gw, token)).status).toBe(200);
      expect(await gw.commands()).toEqual([]);
    });
  });

  describe('rejected tokens', () => {
    beforeEach(() => reset(gw));

    const now = nowSec();
    const cases: [string, () => Promise<string>][] = [
      ['alg none', async () => unsignedJwt(claims(), { typ: 'logout+jwt' })],
      ['alg none with the kid', async () => unsignedJwt(claims(), { typ: 'logout+jwt', kid: signer.kid })],
      ['HS256 keyed with the public key', () => hs256WithPublicKey(signer, claims(), { typ: 'logout+jwt' })],
      ['an unknown kid (another key)', () => logoutToken(other, claims())],
      [
        'the right kid but another key',
        () => signJwt(signer, claims(), { header: { typ: 'logout+jwt' }, key: other.privateKey }),
      ],
      ['a tampered payload', async () => tamper(await logoutToken(signer, claims()), { sub: 'admin' })],
      ['an expired token', () => logoutToken(signer, claims({ iat: now - 600, exp: now - 300 }))],
      [
        'an iat in the future beyond the skew',
        () => logoutToken(signer, claims({ iat: now + 600, exp: now + 900 })),
      ],
      [
        'an iat older than the dedup window',
        () => logoutToken(signer, claims({ iat: now - 2 * 86_400, exp: now + 600 })),
      ],
      [
        // Younger than the window, but its jti's mark, set when it first came (up to a skew before its
        // iat), could be gone by now: a replay would act twice.
        'an iat less than the dedup window ago, but more than the window less twice the skew',
        () => logoutToken(signer, claims({ iat: now - 86_400 + 30, exp: now + 600 })),
      ],
      ['a wrong iss', () => logoutToken(signer, claims({ iss: 'https://evil.example.com' }))],
      ['a wrong aud', () => logoutToken(signer, claims({ aud: 'another-client' }))],
      ['no events claim', () => logoutToken(signer, claims({ events: undefined }))],
      [
        'events without the back-channel logout key',
        () => logoutToken(signer, claims({ events: { 'http://schemas.openid.net/event/other': {} } })),
      ],
      [
        'a back-channel event that is not an object',
        () => logoutToken(signer, claims({ events: { [BCL_EVENT]: 'yes' } })),
      ],
      ['events as an array', () => logoutToken(signer, claims({ events: [BCL_EVENT] }))],
      ['a nonce', () => logoutToken(signer, claims({ nonce: 'n-0S6_WzA2Mj' }))],
      ['typ JWT', () => logoutToken(signer, claims(), { typ: 'JWT' })],
      ['typ secevent+jwt', () => logoutToken(signer, claims(), { typ: 'secevent+jwt' })],
      ['neither sub nor sid', () => logoutToken(signer, claims({ sub: undefined, sid: undefined }))],
      ['empty sub and sid', () => logoutToken(signer, claims({ sub: '', sid: '' }))],
      ['no jti', () => logoutToken(signer, claims({ jti: undefined }))],
      ['no iat', () => logoutToken(signer, claims({ iat: undefined }))],
      ['no exp', () => logoutToken(signer, claims({ exp: undefined }))],
      ['a garbage token', async () => 'not-a-jwt'],
      ['three garbage segments', async () => 'abc.def.ghi'],
    ];

    it.each(cases)('refuses %s with 400 and enqueues nothing', async (_name, make) => {
      const token = await make();
      const res = await post(gw, token);
      expectRejected(res);
      expect(res.text).not.toContain(token);
      expect(await gw.commands()).toEqual([]);
    });

    it.each([
      ['application/json', JSON.stringify({ logout_token: 'TOKEN' })],
      ['text/plain', 'logout_token=TOKEN'],
      [
        'multipart/form-data; boundary=x',
        '--x\r\nContent-Disposition: form-data; name="logout_token"\r\n\r\nTOKEN\r\n--x--\r\n',
      ],
    ])('refuses a valid token sent as %s', async (type, template) => {
      const token = await logoutToken(signer, claims());
      const res = await request(gw.app.getHttpServer())
        .post(PATH)
        .set('Content-Type', type)
        .send(template.replace('TOKEN', token));
      expectRejected(res);
      expect(await gw.commands()).toEqual([]);
    });

    it.each([
      ['an empty form', ''],
      ['a form without logout_token', 'token=abc&foo=bar'],
      ['an empty logout_token', 'logout_token='],
    ])('refuses %s', async (_name, body) => {
      const res = await request(gw.app.getHttpServer()).post(PATH).type('form').send(body);
      expectRejected(res);
      expect(await gw.commands()).toEqual([]);
    });

    it('refuses a request without a body', async () => {
      expectRejected(await request(gw.app.getHttpServer()).post(PATH));
      expect(await gw.commands()).toEqual([]);
    });
  });

  describe('several issuers from CONFIG_FILE', () => {
    beforeEach(() => reset(multi));

    it('accepts each issuer, checked against its own keys and audience', async () => {
      const a = claims({ sub: 'user-a', sid: undefined }, ISS_A, 'app-a');
      const b = claims({ sub: 'user-b', sid: 'sid-b' }, ISS_B, 'app-b2');
      expect((await post(multi, await logoutToken(signerA, a))).status).toBe(200);
      expect((await post(multi, await logoutToken(signerB, b))).status).toBe(200);
      const commands = (await multi.commands()).sort((x, y) => x.eventId.localeCompare(y.eventId));
      expect(commands.map((c) => [c.eventId, c.target])).toEqual(
        [
          [`${ISS_A}#${a['jti']}`, { type: 'user', userId: 'user-a' }],
          [`${ISS_B}#${b['jti']}`, { type: 'idp_session', idpSessionId: 'sid-b', userId: 'user-b' }],
        ].sort((x, y) => (x[0] as string).localeCompare(y[0] as string)),
      );
    });

    it('holds an issuer to its configured algorithms, even when its key names none', async () => {
      const signed = (alg: string) =>
        signJwt(signerA, claims({ sub: `user-${alg}`, sid: undefined }, ISS_C, 'app-c'), {
          header: { typ: 'logout+jwt', alg, kid: 'key-c' },
          key: RSA_C.privateKey,
        });
      expect((await post(multi, await signed('PS256'))).status).toBe(200);
      expectRejected(await post(multi, await signed('RS256')));
      expect((await multi.commands()).map((c) => c.target)).toEqual([{ type: 'user', userId: 'user-PS256' }]);
    });

    it("refuses one issuer's claims signed with the other's key, another issuer's audience, and the env issuer", async () => {
      for (const token of [
        await signJwt(signerA, claims({}, ISS_B, 'app-b'), {
          header: { typ: 'logout+jwt', kid: signerB.kid },
        }),
        await signJwt(signerB, claims({}, ISS_A, 'app-a'), { header: { typ: 'logout+jwt' } }),
        await logoutToken(signerA, claims({}, ISS_A, 'app-b')),
        await logoutToken(signer, claims()),
      ]) {
        expectRejected(await post(multi, token));
      }
      expect(await multi.commands()).toEqual([]);
    });
  });

  describe('a remote JWKS', () => {
    let remoteSigner: TestSigner;
    let server: Server;
    let fetches = 0;
    let warm: TestGateway;
    let cold: TestGateway;

    beforeAll(async () => {
      remoteSigner = await createSigner('remote-key', 'ES256');
      server = createServer((req, res) => {
        fetches++;
        if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(remoteSigner.jwks));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
      const env = { OIDC_BCL_ISSUER: ISS_REMOTE, OIDC_BCL_AUDIENCE: AUD, OIDC_BCL_JWKS_URI: uri };
      [warm, cold] = await startPair(
        startGateway({
          ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
          QUEUE_PREFIX: `{${uniquePrefix('bcl-warm')}}`,
          ...env,
        }),
        startGateway({
          ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
          QUEUE_PREFIX: `{${uniquePrefix('bcl-cold')}}`,
          ...env,
        }),
      );
    });

    afterAll(async () => {
      await Promise.all([warm?.close(), cold?.close()]);
      if (server.listening) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('verifies against the fetched keys, keeps them, and answers 503 when they cannot be fetched', async () => {
      const ok = await post(
        warm,
        await logoutToken(remoteSigner, claims({ sub: 'remote-user' }, ISS_REMOTE)),
      );
      expect(ok.status).toBe(200);
      expect(fetches).toBeGreaterThanOrEqual(1);
      expect((await warm.commands()).map((c) => c.target)).toEqual([
        { type: 'idp_session', idpSessionId: 'sid-1', userId: 'remote-user' },
      ]);
      // A token of the issuer signed with a key the JWKS does not hold is the sender's fault: 400.
      expectRejected(
        await post(
          warm,
          await signJwt(remoteSigner, claims({}, ISS_REMOTE), {
            header: { typ: 'logout+jwt' },
            key: (await createSigner('remote-key', 'ES256')).privateKey,
          }),
        ),
      );

      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));

      // The warm gateway still has the key.
      const cached = await post(
        warm,
        await logoutToken(remoteSigner, claims({ sub: 'cached-user' }, ISS_REMOTE)),
      );
      expect(cached.status).toBe(200);
      expect(await warm.commands()).toHaveLength(2);

      // The cold one never had it: nobody can judge the token now, so the sender must retry.
      const token = await logoutToken(remoteSigner, claims({ sub: 'cold-user' }, ISS_REMOTE));
      const res = await post(cold, token);
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(await cold.commands()).toEqual([]);
    });
  });

  /**
   * A JWKS endpoint that answers 5xx (the IdP or its proxy is briefly down) makes jose throw a plain
   * JOSEError; it must give 503 (the OP retries), not a final 400 that drops the logout.
   */
  describe('a remote JWKS that answers 5xx', () => {
    let remoteSigner: TestSigner;
    let server: Server;
    let flaky: TestGateway;

    beforeAll(async () => {
      remoteSigner = await createSigner('flaky-key', 'ES256');
      server = createServer((_req, res) => void res.writeHead(503, { 'retry-after': '1' }).end('down'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      flaky = await startGateway({
        ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
        QUEUE_PREFIX: `{${uniquePrefix('bcl-5xx')}}`,
        OIDC_BCL_ISSUER: ISS_REMOTE,
        OIDC_BCL_AUDIENCE: AUD,
        OIDC_BCL_JWKS_URI: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      });
    });

    afterAll(async () => {
      await flaky?.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('answers 503 with Retry-After (not 400) while the JWKS endpoint answers 503', async () => {
      const res = await post(flaky, await logoutToken(remoteSigner, claims({}, ISS_REMOTE)));
      expect(await flaky.commands()).toEqual([]);
      expect({ status: res.status, retryAfter: res.headers['retry-after'] }).toEqual({
        status: 503,
        retryAfter: expect.stringMatching(/^\d+$/),
      });
    });
  });
});

/** Replaces claims in a signed token's payload, keeping the original signature. */
function tamper(token: string, over: Claims): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claimsSet = { ...(JSON.parse(Buffer.from(payload, 'base64url').toString()) as Claims), ...over };
  return `${header}.${Buffer.from(JSON.stringify(claimsSet)).toString('base64url')}.${signature}`;
}
