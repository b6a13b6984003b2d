import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { SessionStore, tokenRef } from '#session-store';
import {
  createSigner,
  hs256WithPublicKey,
  nowSec,
  signJwt,
  type TestSigner,
  unsignedJwt,
} from '../../../test/support/jwt.js';
import { JWT_RESOURCE, startTestIdp, type TestIdp } from '../../../test/support/oidc-provider.js';
import {
  deletePrefix,
  freePorts,
  REDIS_URL,
  testRedis,
  uniquePrefix,
  waitFor,
} from '../../../test/support/redis.js';
import {
  type TokenIssuerConfig,
  TokenVerifier,
  TokenVerifierUnavailableError,
  type VerifyResult,
} from './index.js';

const TAG_SECRET = 'token-verifier-tag-secret-0123456789';
const CRAFTED = 'https://crafted-issuer.example.com';

/** Every key under the prefix with its value, to show what Redis holds. */
async function redisDump(redis: Redis, prefix: string): Promise<{ keys: string[]; text: string }> {
  const keys = await redis.keys(`${prefix}:*`);
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    const value =
      type === 'hash'
        ? await redis.hgetall(key)
        : type === 'zset'
          ? await redis.zrange(key, '0', '-1')
          : await redis.get(key);
    parts.push(key, JSON.stringify(value));
  }
  return { keys, text: parts.join('\n') };
}

const active = (r: VerifyResult) => (r.active ? { active: true, source: r.source, userId: r.userId } : r);

describe('TokenVerifier (real Redis, a real OpenID Provider)', () => {
  const redis = testRedis();
  const prefix = uniquePrefix('verifier');
  let idp: TestIdp;
  let crafted: TestSigner;
  let store: SessionStore;
  let issuers: TokenIssuerConfig[];
  let verifier: TokenVerifier;
  let n = 0;
  const user = () => `verifier-user-${++n}`;

  beforeAll(async () => {
    idp = await startTestIdp();
    crafted = await createSigner('crafted-1');
    issuers = [
      {
        issuer: idp.issuer,
        audience: JWT_RESOURCE,
        jwksUri: idp.jwksUri,
        requireAtJwtTyp: true,
        groupsClaim: 'groups',
        introspection: {
          uri: idp.introspectionUri,
          clientId: idp.client.id,
          clientSecret: idp.client.secret,
        },
      },
      { issuer: CRAFTED, audience: 'crafted-api', jwks: crafted.jwks },
      { issuer: `${CRAFTED}/at-jwt`, audience: 'crafted-api', jwks: crafted.jwks, requireAtJwtTyp: true },
    ];
    store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    verifier = new TokenVerifier({ store, issuers, cache: { negativeMaxEntries: 100 } });
  });
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
    await idp.stop();
  });

  /** A token of the crafted issuer with `over` applied to valid claims (undefined removes one). */
  const craftedClaims = (over: Record<string, unknown> = {}) => {
    const claims: Record<string, unknown> = {
      iss: CRAFTED,
      aud: 'crafted-api',
      sub: user(),
      iat: nowSec(),
      exp: nowSec() + 300,
      ...over,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    return claims;
  };

  it('verifies a JWT access token against the IdP’s JWKS, then answers it from the cache', async () => {
    const sub = user();
    const token = await idp.jwt(sub, { sid: 'sid-jwt', groups: ['admins'] });
    const first = await verifier.verify(token);
    expect(first).toMatchObject({ active: true, source: 'jwt', userId: sub, revocationChecked: true });
    const second = await verifier.verify(token);
    expect(second).toMatchObject({
      active: true,
      source: 'cache',
      userId: sub,
      claims: {
        sub,
        iss: idp.issuer,
        aud: JWT_RESOURCE,
        scope: 'api:read',
        sid: 'sid-jwt',
        groups: ['admins'],
      },
    });
    if (!second.active) throw new Error('unreachable');
    expect(second.expiresAt).toBeGreaterThan(Date.now());
  });

  it('introspects an opaque token once, then answers it from the cache', async () => {
    const sub = user();
    const token = await idp.opaque(sub, { sid: 'sid-opaque' });
    const before = idp.introspections();
    expect(active(await verifier.verify(token))).toEqual({
      active: true,
      source: 'introspection',
      userId: sub,
    });
    expect(active(await verifier.verify(token))).toEqual({ active: true, source: 'cache', userId: sub });
    // Another process on the same Redis finds it too (through the pointer), without asking the IdP.
    const elsewhere = new TokenVerifier({
      store: new SessionStore({ redis, prefix, tagSecret: TAG_SECRET }),
      issuers,
    });
    expect(active(await elsewhere.verify(token))).toEqual({ active: true, source: 'cache', userId: sub });
    expect(idp.introspections() - before).toBe(1);
  });

  it('gives inactive for a token the IdP revoked, and remembers that only briefly', async () => {
    const token = await idp.opaque(user());
    await idp.revoke(token);
    expect(await verifier.verify(token)).toEqual({ active: false, reason: 'inactive' });
    const calls = idp.introspections();
    expect(await verifier.verify(token)).toEqual({ active: false, reason: 'inactive' });
    expect(idp.introspections()).toBe(calls);
    const hash = tokenRef(token).hash;
    for (const key of [
      store.keys.tokenFailure(hash),
      store.keys.tokenFailures(store.keys.tokenFailureBucket(hash)),
    ]) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(10_000);
    }
  });

  it("makes a user's cached and uncached tokens inactive the moment the user is revoked; later tokens live", async () => {
    const sub = user();
    const cachedJwt = await idp.jwt(sub);
    const cachedOpaque = await idp.opaque(sub);
    const uncachedJwt = await idp.jwt(sub);
    const uncachedOpaque = await idp.opaque(sub);
    for (const t of [cachedJwt, cachedOpaque]) expect((await verifier.verify(t)).active).toBe(true);
    const { notBefore } = await store.revokeUser(sub);
    for (const t of [cachedJwt, cachedOpaque, uncachedJwt, uncachedOpaque])
      expect(await verifier.verify(t)).toEqual({ active: false, reason: 'revoked' });
    // JWT iat has whole seconds: a token issued in the revocation's own second counts as before it.
    await waitFor(() => nowSec() * 1000 >= notBefore, 'the revocation’s second to pass');
    const later = await idp.jwt(sub);
    expect(active(await verifier.verify(later))).toEqual({ active: true, source: 'jwt', userId: sub });
  });

  it('revokes the tokens of one IdP session (sid) with it, cached or not, and keeps the others', async () => {
    const sub = user();
    const cached = await idp.jwt(sub, { sid: 'sid-a' });
    const uncached = await idp.opaque(sub, { sid: 'sid-a' });
    const otherSession = await idp.jwt(sub, { sid: 'sid-b' });
    for (const t of [cached, otherSession]) expect((await verifier.verify(t)).active).toBe(true);
    await store.revokeIdpSession('sid-a');
    expect(await verifier.verify(cached)).toEqual({ active: false, reason: 'revoked' });
    expect(await verifier.verify(uncached)).toEqual({ active: false, reason: 'revoked' });
    expect(active(await verifier.verify(otherSession))).toEqual({
      active: true,
      source: 'cache',
      userId: sub,
    });
  });

  it('finds users who hold only tokens when their group is revoked', async () => {
    const sub = user();
    const token = await idp.jwt(sub, { groups: ['token-only-group'] });
    expect((await verifier.verify(token)).active).toBe(true);
    const { users, notBefore } = await store.revokeGroup('token-only-group');
    expect(users).toEqual([sub]);
    await store.revokeUser(sub, { notBefore });
    expect(await verifier.verify(token)).toEqual({ active: false, reason: 'revoked' });
  });

  it('refuses bad JWTs with a reason, and never caches them as active', async () => {
    const cases: [string, Promise<string> | string, string][] = [
      ['expired', signJwt(crafted, craftedClaims({ iat: nowSec() - 600, exp: nowSec() - 120 })), 'expired'],
      ['wrong iss', signJwt(crafted, craftedClaims({ iss: 'https://other.example.com' })), 'unknown_issuer'],
      ['wrong aud', signJwt(crafted, craftedClaims({ aud: 'someone-else' })), 'invalid'],
      ['alg none', unsignedJwt(craftedClaims()), 'invalid'],
      ['HMAC with the public key', hs256WithPublicKey(crafted, craftedClaims()), 'invalid'],
      ['unknown kid', signJwt(crafted, craftedClaims(), { header: { kid: 'no-such-key' } }), 'invalid'],
      ['another key', createSigner('crafted-1').then((s) => signJwt(s, craftedClaims())), 'invalid'],
      ['no iat', signJwt(crafted, craftedClaims({ iat: undefined })), 'invalid'],
      ['not yet valid', signJwt(crafted, craftedClaims({ nbf: nowSec() + 600 })), 'invalid'],
      ['no sub', signJwt(crafted, craftedClaims({ sub: undefined })), 'invalid'],
      ['typ not at+jwt', signJwt(crafted, craftedClaims({ iss: `${CRAFTED}/at-jwt` })), 'invalid'],
      [
        'signed by another issuer’s key',
        signJwt(crafted, craftedClaims({ iss: idp.issuer, aud: JWT_RESOURCE })),
        'invalid',
      ],
      ['JWT of no issuer we know', signJwt(crafted, craftedClaims({ iss: undefined })), 'unknown_issuer'],
      // Not a JWT, so opaque: the IdP's introspection says no.
      ['garbage', 'eyJhbGciOi.not-a-jwt.at-all', 'inactive'],
    ];
    for (const [what, made, reason] of cases) {
      const token = await made;
      expect({ what, result: await verifier.verify(token) }).toEqual({
        what,
        result: { active: false, reason },
      });
      expect({ what, again: await verifier.verify(token) }).toEqual({
        what,
        again: { active: false, reason },
      });
    }
    // And valid ones of the same issuers do verify (the cases above fail for their own reason).
    expect((await verifier.verify(await signJwt(crafted, craftedClaims()))).active).toBe(true);
    const atJwt = craftedClaims({ iss: `${CRAFTED}/at-jwt` });
    expect((await verifier.verify(await signJwt(crafted, atJwt, { header: { typ: 'at+jwt' } }))).active).toBe(
      true,
    );
  });

  it('refuses a JWT issued in the future (a clock ahead, or a way past a revocation)', async () => {
    expect(await verifier.verify(await signJwt(crafted, craftedClaims({ iat: nowSec() + 600 })))).toEqual({
      active: false,
      reason: 'invalid',
    });
  });

  describe('an IdP whose introspection answers are its own (a stub endpoint)', () => {
    let server: Server;
    let answer: Record<string, unknown>;
    let uri: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.setHeader('content-type', 'application/json').end(JSON.stringify(answer)));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/as/introspect.oauth2`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));
    const stubVerifier = (allowMissingIat?: boolean) =>
      new TokenVerifier({
        store,
        issuers: [
          {
            issuer: 'https://pingfederate.example.com',
            introspection: {
              uri,
              clientId: 'rs',
              clientSecret: 's',
              ...(allowMissingIat ? { allowMissingIat } : {}),
            },
          },
        ],
      });

    it('refuses an answer without iat unless allowed, since a revocation could not tell it apart', async () => {
      const sub = user();
      answer = { active: true, sub, exp: nowSec() + 300, token_type: 'Bearer' };
      expect(await stubVerifier().verify(`opaque-${sub}-a`)).toEqual({ active: false, reason: 'invalid' });
      expect(await stubVerifier(true).verify(`opaque-${sub}-b`)).toMatchObject({ active: true, userId: sub });
    });

    it('refuses a refresh token and an answer for another issuer', async () => {
      const sub = user();
      answer = { active: true, sub, iat: nowSec(), exp: nowSec() + 300, token_type: 'refresh_token' };
      expect(await stubVerifier().verify(`opaque-${sub}-r`)).toEqual({ active: false, reason: 'invalid' });
      answer = {
        active: true,
        sub,
        iat: nowSec(),
        exp: nowSec() + 300,
        iss: 'https://someone-else.example.com',
      };
      expect(await stubVerifier().verify(`opaque-${sub}-i`)).toEqual({ active: false, reason: 'invalid' });
    });
  });

  describe('several issuers that introspect (stub endpoints that record what they are sent)', () => {
    /** An RFC 7662 endpoint answering with `answer(token)`, recording every token it is sent. */
    interface Stub {
      issuer: string;
      uri: string;
      received: string[];
      answer: (token: string) => Record<string, unknown>;
      server: Server;
    }
    const stubs: Stub[] = [];
    const startStub = async (issuer: string): Promise<Stub> => {
      const stub: Stub = {
        issuer,
        uri: '',
        received: [],
        answer: () => ({ active: false }),
        server: createServer((req, res) => {
          let body = '';
          req.on('data', (d: Buffer) => (body += d.toString()));
          req.on('end', () => {
            const token = new URLSearchParams(body).get('token') ?? '';
            stub.received.push(token);
            res.setHeader('content-type', 'application/json').end(JSON.stringify(stub.answer(token)));
          });
        }),
      };
      await new Promise<void>((r) => stub.server.listen(0, '127.0.0.1', r));
      stub.uri = `http://127.0.0.1:${(stub.server.address() as AddressInfo).port}/as/introspect.oauth2`;
      stubs.push(stub);
      return stub;
    };
    const introspecting = (stub: Stub, extra: Partial<TokenIssuerConfig> = {}): TokenIssuerConfig => ({
      issuer: stub.issuer,
      introspection: { uri: stub.uri, clientId: 'rs', clientSecret: 's' },
      ...extra,
    });
    let pf: Stub;
    beforeAll(async () => {
      pf = await startStub('https://pingfederate.example.com');
    });
    beforeEach(() => {
      for (const stub of stubs) stub.received.length = 0;
    });
    afterAll(() =>
      Promise.all(stubs.map((s) => new Promise<void>((r) => s.server.close(() => r())))).then(
        () => undefined,
      ),
    );

    it('refuses at construction a configuration that does not say which takes opaque tokens, or says it twice', () => {
      const make = (list: TokenIssuerConfig[]) => () => new TokenVerifier({ store, issuers: list });
      expect(make([issuers[0]!, introspecting(pf)])).toThrow(
        /introspect: set opaqueTokens: true on the one whose opaque tokens/,
      );
      expect(
        make([{ ...issuers[0]!, opaqueTokens: true }, introspecting(pf, { opaqueTokens: true })]),
      ).toThrow(/^opaqueTokens is set on issuers .*: an opaque token goes to exactly one issuer/);
      expect(make([{ ...issuers[1]!, opaqueTokens: true }])).toThrow(/opaqueTokens needs introspection/);
      expect(make([issuers[1]!, { ...issuers[1]! }])).toThrow(/configured twice/);
      // Saying it once, or ruling the others out, is enough.
      expect(make([issuers[0]!, introspecting(pf, { opaqueTokens: true })])).not.toThrow();
      expect(make([issuers[0]!, introspecting(pf, { opaqueTokens: false })])).not.toThrow();
    });

    it('sends an opaque token to the one issuer that takes them, never to the others', async () => {
      const other = new TokenVerifier({
        store,
        issuers: [{ ...issuers[0]!, opaqueTokens: true }, introspecting(pf)],
      });
      const sub = user();
      const token = await idp.opaque(sub);
      expect(active(await other.verify(token))).toEqual({
        active: true,
        source: 'introspection',
        userId: sub,
      });
      // One the IdP does not know is inactive, and still goes nowhere else.
      expect(await other.verify(`opaque-unknown-${sub}`)).toEqual({ active: false, reason: 'inactive' });
      expect(pf.received).toEqual([]);
    });

    it('sends an opaque token only to the issuer chosen, even when another issuer listed first would vouch for it', async () => {
      const before = idp.introspections();
      const chosen = new TokenVerifier({
        store,
        issuers: [issuers[0]!, introspecting(pf, { opaqueTokens: true })],
      });
      const token = await idp.opaque(user());
      expect(await chosen.verify(token)).toEqual({ active: false, reason: 'inactive' });
      expect(pf.received).toEqual([token]);
      expect(idp.introspections()).toBe(before);
    });

    it('sends a JWT to the issuer it names only, whichever takes opaque tokens', async () => {
      const jwtOnly = await startStub('https://jwt-introspected.example.com');
      const sub = user();
      jwtOnly.answer = () => ({ active: true, sub, iat: nowSec(), exp: nowSec() + 300 });
      const mixed = new TokenVerifier({
        store,
        issuers: [introspecting(pf, { opaqueTokens: true }), introspecting(jwtOnly)],
      });
      const token = `${unsignedJwt({ iss: jwtOnly.issuer, sub, iat: nowSec(), exp: nowSec() + 300 })}sig`;
      expect(active(await mixed.verify(token))).toEqual({
        active: true,
        source: 'introspection',
        userId: sub,
      });
      expect(jwtOnly.received).toEqual([token]);
      expect(pf.received).toEqual([]);
    });

    it("finds a cached introspected JWT whose own subject is not the issuer's answer (the hint misses)", async () => {
      // An issuer without keys: its JWTs are introspected, and its answer names the user, not the JWT.
      const renaming = await startStub('https://renaming.example.com');
      const real = user();
      renaming.answer = () => ({ active: true, sub: real, iat: nowSec(), exp: nowSec() + 300 });
      const config = [introspecting(renaming)];
      const token = `${unsignedJwt({ iss: renaming.issuer, sub: 'an-alias', iat: nowSec(), exp: nowSec() + 300 })}sig`;
      expect(active(await new TokenVerifier({ store, issuers: config }).verify(token))).toEqual({
        active: true,
        source: 'introspection',
        userId: real,
      });
      // Another process (no memory of the token; its hint is the JWT's subject) finds it in the cache.
      const elsewhere = new TokenVerifier({
        store: new SessionStore({ redis, prefix, tagSecret: TAG_SECRET }),
        issuers: config,
      });
      expect(active(await elsewhere.verify(token))).toEqual({ active: true, source: 'cache', userId: real });
      expect(renaming.received).toHaveLength(1);
      // And a revocation of the real user reaches it there.
      await store.revokeUser(real);
      expect(await elsewhere.verify(token)).toEqual({ active: false, reason: 'revoked' });
    });
  });

  it('answers bad input with malformed, doing no work and never throwing', async () => {
    for (const input of ['', 'x'.repeat(8193), 'has space', 'tab\there', 42, null, undefined, {}, ['a']])
      expect(await verifier.verify(input)).toEqual({ active: false, reason: 'malformed' });
  });

  it('leaves at most the bound of failures in Redis after 10,000 random tokens, and no token', async () => {
    const sign = async () => {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: crafted.kid })).toString('base64url');
      const body = Buffer.from(JSON.stringify(craftedClaims())).toString('base64url');
      return `${header}.${body}.${Buffer.from(Math.random().toString()).toString('base64url')}`;
    };
    const tokens = await Promise.all(Array.from({ length: 10_000 }, sign));
    for (let i = 0; i < tokens.length; i += 250) {
      const results = await Promise.all(tokens.slice(i, i + 250).map((t) => verifier.verify(t)));
      expect(results.every((r) => !r.active && r.reason === 'invalid')).toBe(true);
    }
    // The bound, and (every bucket having seen hundreds of these) close to it: failures are remembered.
    const remembered = await store.tokens.rememberedFailures();
    expect(remembered).toBeLessThanOrEqual(100);
    expect(remembered).toBeGreaterThanOrEqual(90);
    const { keys, text } = await redisDump(redis, prefix);
    expect(keys.filter((k) => /:\{tf\.\d+\}:/.test(k)).length).toBeLessThanOrEqual(100);
    expect(keys.filter((k) => k.includes(':tl:')).length).toBeLessThanOrEqual(100);
    for (const t of tokens.slice(0, 50)) expect(text).not.toContain(t.split('.')[2]);
  });

  it('keeps no token in any key or value of Redis', async () => {
    const jwt = await idp.jwt(user());
    const opaque = await idp.opaque(user());
    await verifier.verify(jwt);
    await verifier.verify(opaque);
    const { text } = await redisDump(redis, prefix);
    expect(text).not.toContain(opaque);
    expect(text).not.toContain(jwt.split('.')[2]!);
  });

  describe('a stampede of one fresh opaque token', () => {
    const CHILD = resolve('test/support/verify-child.mjs');
    let child: ChildProcess;
    let lines: AsyncIterator<string>;

    beforeAll(async () => {
      if (!existsSync(resolve('dist/libs/token-verifier/src/index.js')))
        throw new Error('dist/ is missing: run `npm run build` before these tests (a child process uses it)');
      child = spawn(process.execPath, [CHILD], {
        env: {
          PATH: process.env['PATH'] ?? '',
          VERIFY_CHILD: JSON.stringify({ redisUrl: REDIS_URL, prefix, tagSecret: TAG_SECRET, issuers }),
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      expect((await lines.next()).value).toBe('ready');
    });
    afterAll(async () => {
      child.stdin!.end();
      await new Promise((r) => child.once('exit', r));
    });

    it('makes exactly one introspection call for 500 concurrent verifications across two processes', async () => {
      const sub = user();
      const token = await idp.opaque(sub);
      const before = idp.introspections();
      child.stdin!.write(`250 ${token}\n`);
      const here = await Promise.all(Array.from({ length: 250 }, () => verifier.verify(token)));
      const there = JSON.parse((await lines.next()).value as string) as Record<string, number>;
      expect(here.every((r) => r.active && r.userId === sub)).toBe(true);
      const total = Object.entries(there)
        .filter(([k]) => k.startsWith('active:'))
        .reduce((a, [, v]) => a + v, 0);
      expect(total).toBe(250);
      expect(idp.introspections() - before).toBe(1);
    });
  });

  describe('when Redis is out of reach', () => {
    let down: Redis;
    beforeAll(async () => {
      const [port] = await freePorts(1);
      down = new Redis({
        port: port!,
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        disconnectTimeout: 10,
      });
      down.on('error', () => undefined);
    });
    afterAll(() => down.disconnect());

    it('fails closed by default: an error saying Redis, never a verdict', async () => {
      const closed = new TokenVerifier({
        store: new SessionStore({ redis: down, prefix, tagSecret: TAG_SECRET }),
        issuers,
      });
      const token = await idp.jwt(user());
      const err = await closed.verify(token).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TokenVerifierUnavailableError);
      expect((err as TokenVerifierUnavailableError).dependency).toBe('redis');
      expect(String((err as Error).message)).not.toContain(token);
    });

    it('verifies JWTs without the revocation check when configured, logged and counted; opaque tokens still fail', async () => {
      const warnings: string[] = [];
      let unchecked = 0;
      const open = new TokenVerifier({
        store: new SessionStore({ redis: down, prefix, tagSecret: TAG_SECRET }),
        issuers,
        whenRedisDown: 'verify-jwt-unchecked',
        logger: { warn: (m) => warnings.push(m) },
        metrics: { uncheckedJwt: () => unchecked++ },
      });
      const sub = user();
      expect(await open.verify(await idp.jwt(sub))).toMatchObject({
        active: true,
        source: 'jwt',
        userId: sub,
        revocationChecked: false,
      });
      expect(await open.verify(await signJwt(crafted, craftedClaims({ aud: 'nope' })))).toEqual({
        active: false,
        reason: 'invalid',
      });
      expect(unchecked).toBe(1);
      expect(warnings).toEqual([expect.stringContaining('without the revocation check')]);
      await expect(open.verify(await idp.opaque(sub))).rejects.toBeInstanceOf(TokenVerifierUnavailableError);
    });
  });
});
