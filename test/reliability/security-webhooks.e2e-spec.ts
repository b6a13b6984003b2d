import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { SSF_EVENTS } from '#identity-events';
import { commandId, RevocationCommand } from '#revocation';
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
  BCL_AUD,
  BCL_EVENT,
  BCL_ISS,
  issuerEnv,
  logoutClaims as bclClaims,
  securityEventClaims,
  signLogoutToken,
  signSet,
  SSF_AUD,
  SSF_ISS,
} from '../support/jwt-issuers.js';
import { uniquePrefix } from '../support/redis.js';
import {
  contentType,
  expectNoPrototypePollution,
  json,
  jsonObject,
  jwtShaped,
  signRaw,
  text,
} from '../support/security-fuzz.js';

/**
 * The two JWT webhooks over HTTP (the real gateway on Fastify, real Redis): bodies over the limit,
 * nested, garbage, invalid UTF-8, prototype keys and wrong content types get a clear 4xx; fast-check
 * fuzzing of random bodies, JWT-shaped strings and validly signed tokens of mutated claims: never a
 * 5xx, never a crash, and a command on the queue exactly when the token is valid and authentic.
 */

const BCL = '/webhooks/oidc/backchannel-logout';
const SSF = '/webhooks/ssf';
const SET_TYPE = 'application/secevent+jwt';
const FORM = 'application/x-www-form-urlencoded';
const BODY_LIMIT = 256 * 1024;
const RUNS = 150;

type Claims = Record<string, unknown>;
const RESERVED = new Set([
  'iss',
  'aud',
  'iat',
  'exp',
  'nbf',
  'jti',
  'sub',
  'sid',
  'events',
  'nonce',
  'sub_id',
]);
/** Random extra claims that do not touch a claim the parsers look at. */
const extraClaims = jsonObject.map((o) =>
  Object.fromEntries(Object.entries(o).filter(([k]) => !RESERVED.has(k))),
);

describe('JWT webhooks under hostile input', () => {
  let bclSigner: TestSigner;
  let ssfSigner: TestSigner;
  let impostor: TestSigner;
  let ssfImpostor: TestSigner;
  let stranger: TestSigner;
  let gw: TestGateway;

  beforeAll(async () => {
    [bclSigner, ssfSigner, impostor, ssfImpostor, stranger] = await Promise.all([
      createSigner('bcl-key', 'RS256'),
      createSigner('ssf-key', 'ES256'),
      createSigner('bcl-key', 'RS256'),
      createSigner('ssf-key', 'ES256'),
      createSigner('stranger-key', 'RS256'),
    ]);
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('sec-hooks')}}`,
      ENQUEUE_TIMEOUT_MS: '15000',
      WEBHOOK_BODY_LIMIT: String(BODY_LIMIT),
      JWT_WEBHOOK_BODY_LIMIT: String(BODY_LIMIT),
      ...issuerEnv('OIDC_BCL', bclSigner, BCL_ISS, BCL_AUD),
      ...issuerEnv('SSF', ssfSigner, SSF_ISS, SSF_AUD),
    });
    await gw.app.listen(0, '127.0.0.1');
  });

  afterAll(() => gw?.close());

  const server = () => gw.app.getHttpServer();
  const postBcl = (body: string | Buffer, type = FORM) =>
    request(server()).post(BCL).set('Content-Type', type).send(body);
  const postSet = (body: string | Buffer, type = SET_TYPE) =>
    request(server()).post(SSF).set('Content-Type', type).send(body);
  const form = (token: string) => `logout_token=${encodeURIComponent(token)}`;
  const jobCount = async () => (await gw.commands()).length;

  const logoutToken = (c: Claims) => signLogoutToken(bclSigner, c);
  const setClaims = (over: Claims = {}): Claims =>
    securityEventClaims(
      { 'https://schemas.openid.net/secevent/caep/event-type/credential-change': {} },
      { sub_id: { format: 'opaque', id: 'user-1' }, ...over },
    );
  const set = (c: Claims) => signSet(ssfSigner, c);

  /** The service still answers a valid delivery after whatever came before. */
  async function expectStillServing() {
    expect((await postBcl(form(await logoutToken(bclClaims())))).status).toBe(200);
    expect((await postSet(await set(setClaims()))).status).toBe(202);
  }

  /** A raw HTTP request with a chunked body (no Content-Length: the limit must hold as it streams). */
  function chunked(path: string, type: string, chunks: Buffer[]): Promise<number> {
    const { port } = server().address() as AddressInfo;
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': type } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        // The server may answer 413 and close before the whole body is written.
        err.code === 'EPIPE' || err.code === 'ECONNRESET' ? resolve(413) : reject(err),
      );
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  describe('bodies', () => {
    it('answers 413 to a back-channel logout or SET over JWT_WEBHOOK_BODY_LIMIT, and enqueues nothing', async () => {
      const before = await jobCount();
      const token = await logoutToken(bclClaims());
      const padded = `${form(token)}&pad=${'x'.repeat(BODY_LIMIT)}`;
      expect((await postBcl(padded)).status).toBe(413);
      const setToken = await set(setClaims());
      expect((await postSet(setToken + ' '.repeat(BODY_LIMIT))).status).toBe(413);
      // Streamed without a Content-Length.
      const chunk = Buffer.alloc(4096, 'x');
      const over = Array<Buffer>(BODY_LIMIT / chunk.length + 2).fill(chunk);
      expect(await chunked(BCL, FORM, [Buffer.from(`${form(token)}&pad=`), ...over])).toBe(413);
      expect(await chunked(SSF, SET_TYPE, [Buffer.from(setToken), ...over])).toBe(413);
      expect(await jobCount()).toBe(before);
      // Just under the limit is fine.
      const fits = `${form(await logoutToken(bclClaims()))}&pad=`;
      expect((await postBcl(fits + 'x'.repeat(BODY_LIMIT - fits.length - 1))).status).toBe(200);
    });

    it.each([
      ['100000 unclosed [', '['.repeat(100_000)],
      ['40000 nested objects', `${'{"a":'.repeat(40_000)}1${'}'.repeat(40_000)}`],
      [
        'a JWT-shaped token with a 100000-deep payload',
        `e30.${Buffer.from('['.repeat(100_000)).toString('base64url')}.x`,
      ],
      ['NUL bytes', '\u0000'.repeat(100)],
      ['a lone dot', '.'],
    ])('answers 400 to deeply nested or garbage bodies (%s) on both endpoints', async (_name, body) => {
      expect(body.length).toBeLessThan(BODY_LIMIT - 20);
      const before = await jobCount();
      // As the logout_token (unencoded: a form parser must cope), as the whole form, and as the SET.
      for (const b of [`logout_token=${body}`, body]) {
        const res = await postBcl(b);
        expect(res.status).toBe(400);
        expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
      }
      const asSet = await postSet(body);
      expect(asSet.status).toBe(400);
      expect(asSet.body).toEqual({ err: 'invalid_request', description: expect.any(String) });
      expect(await jobCount()).toBe(before);
    });

    it('copes with validly signed tokens whose claims nest 20000 levels deep (2xx, never 5xx)', async () => {
      const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      const now = nowSec();
      const bclPayload =
        `{"iss":"${BCL_ISS}","aud":"${BCL_AUD}","iat":${now},"exp":${now + 60},"jti":"${randomUUID()}",` +
        `"sub":"deep-user","events":{"${BCL_EVENT}":{"deep":${deep}}},"deep":${deep}}`;
      const bcl = await postBcl(
        form(await signRaw(bclSigner, { alg: 'RS256', kid: bclSigner.kid, typ: 'logout+jwt' }, bclPayload)),
      );
      expect(bcl.status).toBe(200);
      const setPayload =
        `{"iss":"${SSF_ISS}","aud":"${SSF_AUD}","iat":${now},"jti":"${randomUUID()}",` +
        `"sub_id":{"format":"opaque","id":"deep-user","deep":${deep}},` +
        `"events":{"https://example.com/event-type/other":${deep},` +
        `"https://schemas.openid.net/secevent/risc/event-type/account-disabled":{"deep":${deep}}}}`;
      const s = await postSet(await signRaw(ssfSigner, { alg: 'ES256', kid: ssfSigner.kid }, setPayload));
      expect(s.status).toBe(202);
      await expectStillServing();
    });

    it('answers 400 to invalid UTF-8 on both endpoints, and enqueues nothing', async () => {
      const before = await jobCount();
      const token = await logoutToken(bclClaims());
      const broken = Buffer.concat([Buffer.from(form(token)), Buffer.from([0xff, 0xfe, 0xc3])]);
      expect((await postBcl(broken)).status).toBe(400);
      const insideToken = Buffer.concat([
        Buffer.from(`logout_token=${token.slice(0, 40)}`),
        Buffer.from([0xff, 0xc0, 0x80]),
        Buffer.from(token.slice(40)),
      ]);
      expect((await postBcl(insideToken)).status).toBe(400);
      const setToken = await set(setClaims());
      const setBroken = Buffer.concat([
        Buffer.from(setToken.slice(0, 30)),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from(setToken.slice(30)),
      ]);
      expect((await postSet(setBroken)).status).toBe(400);
      expect((await postSet(Buffer.from([0xff, 0xff, 0xff]))).status).toBe(400);
      expect(await jobCount()).toBe(before);
    });

    it('lets no __proto__ or constructor key pollute a prototype or change a command', async () => {
      const before = await jobCount();
      const jti = randomUUID();
      const payload =
        `{"iss":"${BCL_ISS}","aud":"${BCL_AUD}","iat":${nowSec()},"exp":${nowSec() + 60},"jti":"${jti}",` +
        `"sub":"proto-user","events":{"${BCL_EVENT}":{},"__proto__":{"polluted":"yes"}},` +
        `"__proto__":{"sid":"attacker-sid","polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}`;
      const token = await signRaw(
        bclSigner,
        { alg: 'RS256', kid: bclSigner.kid, typ: 'logout+jwt' },
        payload,
      );
      const res = await postBcl(`__proto__=x&constructor=y&logout_token=${encodeURIComponent(token)}`);
      expect(res.status).toBe(200);
      const job = await gw.queue.getJob(commandId('oidc_bcl', `${BCL_ISS}#${jti}`));
      expect(job?.data.target).toEqual({ type: 'user', userId: 'proto-user' });

      const setJti = randomUUID();
      const setPayload =
        `{"iss":"${SSF_ISS}","aud":"${SSF_AUD}","iat":${nowSec()},"jti":"${setJti}",` +
        `"sub_id":{"format":"opaque","id":"proto-user","__proto__":{"format":"email"}},` +
        `"events":{"__proto__":{"subject":{"format":"opaque","id":"x"}},` +
        `"https://schemas.openid.net/secevent/risc/event-type/account-disabled":{"__proto__":{"subject":{"format":"opaque","id":"attacker"}}}},` +
        `"__proto__":{"polluted":"yes"}}`;
      const setRes = await postSet(
        await signRaw(ssfSigner, { alg: 'ES256', kid: ssfSigner.kid, typ: 'secevent+jwt' }, setPayload),
      );
      expect(setRes.status).toBe(202);
      const setJob = await gw.queue.getJob(
        commandId(
          'ssf',
          `${SSF_ISS}#${setJti}#https://schemas.openid.net/secevent/risc/event-type/account-disabled`,
        ),
      );
      expect(setJob?.data.target).toEqual({ type: 'user', userId: 'proto-user' });
      expect((await jobCount()) - before).toBe(2);
      expectNoPrototypePollution();
    });

    it('never answers 5xx to a valid token under a random content type, and acts only under the right one', async () => {
      let acted = 0;
      await fc.assert(
        // An empty Content-Type is not sent as such (superagent puts its form default in).
        fc.asyncProperty(
          contentType.filter((t) => t.trim() !== ''),
          async (type) => {
            const media = type.split(';')[0]!.trim().toLowerCase();
            const bcl = await postBcl(form(await logoutToken(bclClaims())), type);
            const s = await postSet(await set(setClaims()), type);
            expect([200, 400, 415]).toContain(bcl.status);
            expect([202, 400, 415]).toContain(s.status);
            expect(bcl.status === 200).toBe(media === FORM);
            expect(s.status === 202).toBe(media === SET_TYPE);
            if (bcl.status === 200) acted++;
            if (s.status === 202) acted++;
          },
        ),
        { numRuns: 100 },
      );
      expect(acted).toBeGreaterThan(0);
    });
  });

  describe('back-channel logout, fuzzed', () => {
    it('answers 400 to random form bodies and random JWT-shaped logout tokens, and enqueues nothing', async () => {
      const before = await jobCount();
      const formBody = fc.oneof(
        text,
        fc
          .dictionary(fc.oneof(text, fc.constant('logout_token')), text, { maxKeys: 4 })
          .map((d) => new URLSearchParams(d as Record<string, string>).toString()),
        jwtShaped.map(form),
        fc.tuple(jsonObject, jsonObject).map(([h, p]) => form(unsignedJwt(p, h))),
      );
      await fc.assert(
        fc.asyncProperty(formBody, async (body) => {
          const res = await postBcl(body);
          expect(res.status).toBe(400);
          expect(res.headers['cache-control']).toBe('no-store');
          expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
        }),
        { numRuns: RUNS },
      );
      expect(await jobCount()).toBe(before);
    });

    /** Each turns a valid logout token into one that must be refused. */
    const BCL_REJECTS: Record<string, (c: Claims) => Promise<string> | string> = {
      'alg none': (c) => unsignedJwt(c, { typ: 'logout+jwt', kid: bclSigner.kid }),
      'HS256 keyed with the public key': (c) => hs256WithPublicKey(bclSigner, c, { typ: 'logout+jwt' }),
      'another key under the same kid': (c) => signJwt(impostor, c, { header: { typ: 'logout+jwt' } }),
      'an unknown kid': (c) => signJwt(stranger, c, { header: { typ: 'logout+jwt' } }),
      'a tampered payload': async (c) => {
        const [h, , s] = (await logoutToken(c)).split('.');
        return `${h}.${Buffer.from(JSON.stringify({ ...c, sub: 'someone-else' })).toString('base64url')}.${s}`;
      },
      expired: (c) => logoutToken({ ...c, iat: nowSec() - 900, exp: nowSec() - 300 }),
      'iat in the future beyond the skew': (c) =>
        logoutToken({ ...c, iat: nowSec() + 600, exp: nowSec() + 900 }),
      'iat older than the dedup window': (c) => logoutToken({ ...c, iat: nowSec() - 2 * 86_400 }),
      'nbf in the future': (c) => logoutToken({ ...c, nbf: nowSec() + 600 }),
      'a wrong iss': (c) => logoutToken({ ...c, iss: 'https://evil.example.com' }),
      'a wrong aud': (c) => logoutToken({ ...c, aud: 'another-client' }),
      'no events claim': (c) => logoutToken({ ...c, events: undefined }),
      'another event': (c) => logoutToken({ ...c, events: { 'http://schemas.openid.net/event/other': {} } }),
      'a nonce': (c) => logoutToken({ ...c, nonce: 'n-0S6_WzA2Mj' }),
      'neither sub nor sid': (c) => logoutToken({ ...c, sub: undefined, sid: undefined }),
      'no jti': (c) => logoutToken({ ...c, jti: undefined }),
      'no exp': (c) => logoutToken({ ...c, exp: undefined }),
      'typ JWT': (c) => signJwt(bclSigner, c, { header: { typ: 'JWT' } }),
      'a sub over 256 characters': (c) => logoutToken({ ...c, sub: 'u'.repeat(257) }),
    };

    it('queues a command exactly for the valid tokens among validly signed mutations, and acts once on a replay', async () => {
      const counts = { accepted: 0, rejected: 0 };
      const optionalId = fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 256 }), {
        nil: undefined,
      });
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            sub: optionalId,
            sid: optionalId,
            aud: fc.constantFrom(BCL_AUD, [BCL_AUD], ['other', BCL_AUD]),
            typ: fc.constantFrom('logout+jwt', 'application/logout+jwt', 'Logout+JWT', undefined),
            age: fc.integer({ min: -30, max: 3600 }),
            extra: extraClaims,
          }),
          fc.oneof(
            { arbitrary: fc.constant(undefined), weight: 2 },
            { arbitrary: fc.constantFrom(...Object.keys(BCL_REJECTS)), weight: 3 },
          ),
          fc.boolean(),
          async ({ sub, sid, aud, typ, age, extra }, reject, replay) => {
            const jti = randomUUID();
            const iat = nowSec() - age;
            const c: Claims = { ...extra, ...bclClaims({ jti, iat, exp: iat + 3700, aud, sub, sid }) };
            const token = reject
              ? await BCL_REJECTS[reject]!(c)
              : await signJwt(bclSigner, c, { header: { typ } });
            const valid =
              !reject &&
              (sub !== undefined || sid !== undefined) &&
              (sub?.length ?? 0) <= 256 &&
              (sid?.length ?? 0) <= 256;
            const res = await postBcl(form(token));
            expect({ reject, status: res.status }).toEqual({ reject, status: valid ? 200 : 400 });
            const id = commandId('oidc_bcl', `${BCL_ISS}#${jti}`);
            const job = await gw.queue.getJob(id);
            if (!valid) {
              expect(job).toBeUndefined();
              counts.rejected++;
              return;
            }
            counts.accepted++;
            expect(RevocationCommand.safeParse(job?.data).success).toBe(true);
            expect(job!.data.target).toEqual(
              sid !== undefined
                ? { type: 'idp_session', idpSessionId: sid, ...(sub !== undefined ? { userId: sub } : {}) }
                : { type: 'user', userId: sub },
            );
            if (replay) {
              expect((await postBcl(form(token))).status).toBe(200);
              const jobs = await gw.queue.getJobs(['waiting', 'prioritized', 'delayed']);
              expect(jobs.filter((j) => j.data.eventId === `${BCL_ISS}#${jti}`)).toHaveLength(1);
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(counts.accepted).toBeGreaterThan(5);
      expect(counts.rejected).toBeGreaterThan(5);
    });
  });

  describe('SSF, fuzzed', () => {
    it('answers 4xx to random bodies under random content types and to random JWT-shaped SETs, enqueueing nothing', async () => {
      const before = await jobCount();
      const body = fc.oneof(
        text,
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        json.map((v) => JSON.stringify(v) ?? ''),
        jwtShaped,
        fc.tuple(jsonObject, jsonObject).map(([h, p]) => unsignedJwt(p, h)),
      );
      await fc.assert(
        fc.asyncProperty(body, fc.oneof(fc.constant(SET_TYPE), contentType), async (b, type) => {
          const res = await postSet(b, type);
          expect([400, 415]).toContain(res.status);
          if (res.status === 400) {
            expect(res.body).toEqual({ err: expect.any(String), description: expect.any(String) });
            expect(['invalid_request', 'invalid_key', 'invalid_issuer', 'invalid_audience']).toContain(
              res.body.err,
            );
          }
        }),
        { numRuns: RUNS },
      );
      expect(await jobCount()).toBe(before);
    });

    const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
    const KNOWN = [...SSF_EVENTS];
    const ACCOUNT_DISABLED = 'https://schemas.openid.net/secevent/risc/event-type/account-disabled';

    /** Each turns a valid SET into one that must be refused, with the RFC 8935 code it must get. */
    const SSF_REJECTS: Record<string, [string, (c: Claims) => Promise<string> | string]> = {
      'alg none': ['invalid_key', (c) => unsignedJwt(c, { typ: 'secevent+jwt', kid: ssfSigner.kid })],
      'another key under the same kid': [
        'invalid_key',
        (c) => signJwt(ssfSigner, c, { header: { typ: 'secevent+jwt' }, key: ssfImpostor.privateKey }),
      ],
      'an unknown kid': ['invalid_key', (c) => signJwt(stranger, c, { header: { typ: 'secevent+jwt' } })],
      'HS256 keyed with the public key': [
        'invalid_key',
        (c) => hs256WithPublicKey(ssfSigner, c, { typ: 'secevent+jwt' }),
      ],
      'a tampered payload': [
        'invalid_key',
        async (c) => {
          const [h, , s] = (await set(c)).split('.');
          return `${h}.${Buffer.from(JSON.stringify({ ...c, sub_id: { format: 'opaque', id: 'x' } })).toString('base64url')}.${s}`;
        },
      ],
      'a wrong iss': ['invalid_issuer', (c) => set({ ...c, iss: 'https://evil.example.com' })],
      'no iss': ['invalid_issuer', (c) => set({ ...c, iss: undefined })],
      'a wrong aud': ['invalid_audience', (c) => set({ ...c, aud: 'https://other.example.com' })],
      'no events': ['invalid_request', (c) => set({ ...c, events: undefined })],
      'empty events': ['invalid_request', (c) => set({ ...c, events: {} })],
      expired: ['invalid_request', (c) => set({ ...c, iat: nowSec() - 900, exp: nowSec() - 300 })],
      'iat in the future beyond the skew': ['invalid_request', (c) => set({ ...c, iat: nowSec() + 600 })],
      'iat older than the dedup window': [
        'invalid_request',
        (c) => set({ ...c, iat: nowSec() - 2 * 86_400 }),
      ],
      'no jti': ['invalid_request', (c) => set({ ...c, jti: undefined })],
      'typ JWT': ['invalid_request', (c) => signJwt(ssfSigner, c, { header: { typ: 'JWT' } })],
      'typ logout+jwt': ['invalid_request', (c) => signJwt(ssfSigner, c, { header: { typ: 'logout+jwt' } })],
      'an acted-on event without a subject': [
        'invalid_request',
        (c) => set({ ...c, sub_id: undefined, events: { [ACCOUNT_DISABLED]: {} } }),
      ],
      'an unsupported subject format': [
        'invalid_request',
        (c) =>
          set({
            ...c,
            sub_id: { format: 'phone_number', phone_number: '+1' },
            events: { [ACCOUNT_DISABLED]: {} },
          }),
      ],
      'a negative event_timestamp': [
        'invalid_request',
        (c) => set({ ...c, events: { [ACCOUNT_DISABLED]: { event_timestamp: -5 } } }),
      ],
    };

    it('queues one command per acted-on event exactly for valid SETs, and the right error code otherwise', async () => {
      const counts = { accepted: 0, rejected: 0, commands: 0 };
      const id = fc.string({ unit: 'binary', minLength: 1, maxLength: 256 });
      const subject = fc.oneof(
        id.map((v) => ({ format: 'opaque', id: v })),
        id.map((v) => ({ format: 'email', email: v })),
        id.map((v) => ({ format: 'iss_sub', iss: 'https://idp.example.com', sub: v })),
      );
      const event = fc.tuple(
        fc.oneof(
          { arbitrary: fc.constantFrom(...KNOWN), weight: 3 },
          { arbitrary: fc.string({ minLength: 1, maxLength: 30 }).map((s) => `${CAEP}${s}`), weight: 1 },
          { arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString'), weight: 1 },
        ),
        fc.record(
          {
            subject,
            event_timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
            reason_admin: fc.string({ maxLength: 600 }),
            extra: json,
          },
          { requiredKeys: [] },
        ),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(event, { minLength: 1, maxLength: 3 }),
          subject,
          fc.constantFrom('secevent+jwt', 'application/secevent+jwt', undefined),
          extraClaims,
          fc.oneof(
            { arbitrary: fc.constant(undefined), weight: 2 },
            { arbitrary: fc.constantFrom(...Object.keys(SSF_REJECTS)), weight: 3 },
          ),
          async (events, subId, typ, extra, reject) => {
            const jti = randomUUID();
            const eventMap = Object.fromEntries(events);
            const c: Claims = { ...extra, ...setClaims({ jti, sub_id: subId, events: eventMap }) };
            const token = reject
              ? await SSF_REJECTS[reject]![1](c)
              : await signJwt(ssfSigner, c, { header: { typ } });
            const res = await postSet(token);
            const sent = reject ? {} : eventMap;
            const acted = Object.entries(sent).filter(([type]) => SSF_EVENTS.has(type));
            if (reject) {
              expect({ reject, status: res.status, body: res.body }).toEqual({
                reject,
                status: 400,
                body: { err: SSF_REJECTS[reject]![0], description: expect.any(String) },
              });
              counts.rejected++;
            } else {
              expect({ status: res.status, text: res.text }).toEqual({ status: 202, text: '' });
              counts.accepted++;
            }
            // One command per acted-on event of an accepted SET, none otherwise.
            for (const type of KNOWN) {
              const job = await gw.queue.getJob(commandId('ssf', `${SSF_ISS}#${jti}#${type}`));
              const body = acted.find(([t]) => t === type)?.[1] as
                { subject?: { [k: string]: string } } | undefined;
              if (!body) {
                expect(job).toBeUndefined();
                continue;
              }
              counts.commands++;
              expect(RevocationCommand.safeParse(job?.data).success).toBe(true);
              const s = body.subject ?? (subId as { [k: string]: string });
              expect(job!.data.target).toEqual({ type: 'user', userId: s['id'] ?? s['email'] ?? s['sub'] });
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(counts.accepted).toBeGreaterThan(5);
      expect(counts.rejected).toBeGreaterThan(5);
      expect(counts.commands).toBeGreaterThan(5);
      expectNoPrototypePollution();
      await expectStillServing();
    });
  });
});
