import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import request from 'supertest';
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
  CAEP,
  issuerEnv,
  RISC,
  securityEventClaims as set,
  signSet as sign,
  SSF_AUD as AUD,
  SSF_ISS as ISS,
} from '../support/jwt-issuers.js';
import { uniquePrefix } from '../support/redis.js';

const PATH = '/webhooks/ssf';
const SET_TYPE = 'application/secevent+jwt';
const SESSION_REVOKED = `${CAEP}session-revoked`;
const IDP = 'https://idp.example.com';

type Claims = Record<string, unknown>;

/** A long enqueue deadline: the shared test Redis can stall for seconds under other suites' load. */
const SLOW_REDIS_OK = '15000';

function post(gw: TestGateway, body: string, contentType = SET_TYPE) {
  return request(gw.app.getHttpServer()).post(PATH).set('Content-Type', contentType).send(body);
}

const issSub = (sub: string) => ({ format: 'iss_sub', iss: IDP, sub });

/** Removes the jobs of earlier tests (each test uses its own jti, so their dedup marks do not matter). */
async function reset(gw: TestGateway) {
  await gw.queue.obliterate({ force: true });
}

describe('POST /webhooks/ssf', () => {
  let signer: TestSigner;
  let other: TestSigner;
  let gw: TestGateway;

  beforeAll(async () => {
    [signer, other] = await Promise.all([
      createSigner('ssf-key-1', 'ES256'),
      createSigner('other-key', 'ES256'),
    ]);
    gw = await startGateway({
      ENQUEUE_TIMEOUT_MS: SLOW_REDIS_OK,
      QUEUE_PREFIX: `{${uniquePrefix('ssf')}}`,
      ...issuerEnv('SSF', signer, ISS, AUD),
    });
  });

  afterAll(() => gw?.close());

  beforeEach(() => reset(gw));

  /** Posts a signed SET, expects 202 with an empty body, and returns the commands on the queue. */
  async function deliver(c: Claims) {
    const res = await post(gw, await sign(signer, c));
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    return gw.commands();
  }

  describe('accepted SETs', () => {
    it('revokes one IdP session for session-revoked with a complex user + session subject', async () => {
      const c = set(
        { [SESSION_REVOKED]: { initiating_entity: 'policy', reason_admin: { en: 'Landspeed' } } },
        {
          sub_id: {
            format: 'complex',
            user: issSub('user-1'),
            session: { format: 'opaque', id: 'idp-session-1' },
            tenant: { format: 'opaque', id: 'tenant-1' },
          },
        },
      );
      const before = Date.now();
      const commands = await deliver(c);
      expect(commands).toEqual([
        expect.objectContaining({
          target: { type: 'idp_session', idpSessionId: 'idp-session-1', userId: 'user-1' },
          source: 'ssf',
          eventType: SESSION_REVOKED,
          eventId: `${ISS}#${c['jti']}#${SESSION_REVOKED}`,
          notBefore: expect.any(Number),
        }),
      ]);
      expect(commands[0]!.receivedAt).toBeGreaterThanOrEqual(before);
      // As of the end of the SET's second (iat has whole seconds), never later than its arrival.
      expect(commands[0]!.notBefore).toBe(
        Math.min((c['iat'] as number) * 1000 + 999, commands[0]!.receivedAt),
      );
    });

    it('revokes the IdP session alone for a complex subject naming only a session', async () => {
      const c = set(
        { [SESSION_REVOKED]: {} },
        { sub_id: { format: 'complex', session: { format: 'opaque', id: 'idp-session-2' } } },
      );
      expect((await deliver(c)).map((x) => x.target)).toEqual([
        { type: 'idp_session', idpSessionId: 'idp-session-2' },
      ]);
    });

    it.each([
      ['a complex subject naming only the user', { format: 'complex', user: issSub('user-2') }, 'user-2'],
      ['an iss_sub subject', issSub('user-3'), 'user-3'],
      ['an email subject', { format: 'email', email: 'carol@example.com' }, 'carol@example.com'],
      ['an opaque subject', { format: 'opaque', id: 'opaque-4' }, 'opaque-4'],
    ])('revokes the user for session-revoked with %s', async (_name, subId, userId) => {
      const commands = await deliver(set({ [SESSION_REVOKED]: {} }, { sub_id: subId }));
      expect(commands.map((x) => x.target)).toEqual([{ type: 'user', userId }]);
    });

    const userEvents = [
      `${CAEP}credential-change`,
      `${CAEP}token-claims-change`,
      `${RISC}account-disabled`,
      `${RISC}account-purged`,
      `${RISC}credential-compromise`,
    ];

    it.each(userEvents)('revokes the user for %s (sub_id at the top level, CAEP 1.0)', async (type) => {
      const c = set({ [type]: { event_timestamp: 1_700_000_000 } }, { sub_id: issSub('user-5') });
      expect(await deliver(c)).toEqual([
        expect.objectContaining({
          target: { type: 'user', userId: 'user-5' },
          source: 'ssf',
          eventType: type,
          eventId: `${ISS}#${c['jti']}#${type}`,
          // The end of the event's second: a session issued earlier in that second goes too.
          notBefore: 1_700_000_000_999,
        }),
      ]);
    });

    it.each(userEvents)('revokes the user for %s (subject inside the event, older drafts)', async (type) => {
      const c = set({ [type]: { subject: { format: 'email', email: 'dave@example.com' } } });
      const [command, ...more] = await deliver(c);
      expect(more).toEqual([]);
      expect(command).toMatchObject({
        target: { type: 'user', userId: 'dave@example.com' },
        eventType: type,
      });
      expect(command!.notBefore).toBe(Math.min((c['iat'] as number) * 1000 + 999, command!.receivedAt));
    });

    it('takes the subject inside the event over sub_id', async () => {
      const c = set(
        { [`${RISC}account-disabled`]: { subject: issSub('inner-user') } },
        { sub_id: issSub('outer-user') },
      );
      expect((await deliver(c)).map((x) => x.target)).toEqual([{ type: 'user', userId: 'inner-user' }]);
    });

    it('turns each event of a SET into its own command, and ignores event types it does not act on', async () => {
      const c = set(
        {
          [`${CAEP}credential-change`]: { credential_type: 'password', change_type: 'update' },
          [`${RISC}account-disabled`]: { reason: 'hijacking' },
          [`${CAEP}assurance-level-change`]: { current_level: 'nist-aal2' },
        },
        { sub_id: issSub('user-6') },
      );
      const commands = (await deliver(c)).sort((a, b) => a.eventType.localeCompare(b.eventType));
      expect(commands.map((x) => [x.eventType, x.target])).toEqual([
        [`${CAEP}credential-change`, { type: 'user', userId: 'user-6' }],
        [`${RISC}account-disabled`, { type: 'user', userId: 'user-6' }],
      ]);
      expect(new Set(commands.map((x) => x.id)).size).toBe(2);
    });

    it('accepts (202) a SET holding only event types it does not act on, and enqueues nothing', async () => {
      const c = set(
        { 'https://schemas.openid.net/secevent/ssf/event-type/verification': { state: 'abc' } },
        { sub_id: { format: 'opaque', id: 'stream-1' } },
      );
      expect(await deliver(c)).toEqual([]);
    });

    it('accepts a SET without a typ header, and a content type with parameters', async () => {
      const token = await signJwt(
        signer,
        set({ [`${RISC}account-purged`]: {} }, { sub_id: issSub('user-7') }),
      );
      const res = await post(gw, token, 'application/secevent+jwt; charset=utf-8');
      expect(res.status).toBe(202);
      expect((await gw.commands()).map((x) => x.target)).toEqual([{ type: 'user', userId: 'user-7' }]);
    });

    it('acts once on a replayed SET (same jti)', async () => {
      const c = set({ [`${CAEP}credential-change`]: {} }, { sub_id: issSub('user-8') });
      const token = await sign(signer, c);
      expect((await post(gw, token)).status).toBe(202);
      const again = await post(gw, token);
      expect(again.status).toBe(202);
      expect(again.text).toBe('');
      expect((await post(gw, await sign(signer, { ...c, iat: nowSec() - 3 }))).status).toBe(202);
      expect(await gw.commands()).toHaveLength(1);

      await gw.queue.obliterate({ force: true });
      expect((await post(gw, token)).status).toBe(202);
      expect(await gw.commands()).toEqual([]);
    });
  });

  describe('rejected SETs', () => {
    const valid = () => set({ [`${CAEP}credential-change`]: {} }, { sub_id: issSub('user-9') });
    const now = nowSec();

    const cases: [string, string, () => Promise<string>][] = [
      [
        'a bad signature (right kid, other key)',
        'invalid_key',
        () => signJwt(signer, valid(), { header: { typ: 'secevent+jwt' }, key: other.privateKey }),
      ],
      ['an unknown kid', 'invalid_key', () => sign(other, valid())],
      [
        'HS256 keyed with the public key',
        'invalid_key',
        () => hs256WithPublicKey(signer, valid(), { typ: 'secevent+jwt' }),
      ],
      ['alg none', 'invalid_key', async () => unsignedJwt(valid(), { typ: 'secevent+jwt', kid: signer.kid })],
      [
        'a wrong issuer',
        'invalid_issuer',
        () => sign(signer, { ...valid(), iss: 'https://evil.example.com' }),
      ],
      ['no issuer', 'invalid_issuer', () => sign(signer, { ...valid(), iss: undefined })],
      [
        'a wrong audience',
        'invalid_audience',
        () => sign(signer, { ...valid(), aud: 'https://other.example.com' }),
      ],
      ['no events claim', 'invalid_request', () => sign(signer, { ...valid(), events: undefined })],
      ['an empty events claim', 'invalid_request', () => sign(signer, { ...valid(), events: {} })],
      [
        'events as an array',
        'invalid_request',
        () => sign(signer, { ...valid(), events: [`${CAEP}credential-change`] }),
      ],
      [
        'an event that is not an object',
        'invalid_request',
        () => sign(signer, { ...valid(), events: { [`${CAEP}credential-change`]: true } }),
      ],
      ['no subject', 'invalid_request', () => sign(signer, { ...valid(), sub_id: undefined })],
      [
        'an unsupported subject format',
        'invalid_request',
        () => sign(signer, { ...valid(), sub_id: { format: 'phone_number', phone_number: '+12065550100' } }),
      ],
      [
        'an incomplete subject',
        'invalid_request',
        () => sign(signer, { ...valid(), sub_id: { format: 'email' } }),
      ],
      [
        'a complex subject without user or session',
        'invalid_request',
        () =>
          sign(
            signer,
            set(
              { [SESSION_REVOKED]: {} },
              { sub_id: { format: 'complex', tenant: { format: 'opaque', id: 't' } } },
            ),
          ),
      ],
      ['typ JWT', 'invalid_request', () => sign(signer, valid(), { typ: 'JWT' })],
      ['typ logout+jwt', 'invalid_request', () => sign(signer, valid(), { typ: 'logout+jwt' })],
      ['no jti', 'invalid_request', () => sign(signer, { ...valid(), jti: undefined })],
      ['no iat', 'invalid_request', () => sign(signer, { ...valid(), iat: undefined })],
      ['an iat in the future', 'invalid_request', () => sign(signer, { ...valid(), iat: now + 3600 })],
      [
        'an iat older than the dedup window',
        'invalid_request',
        () => sign(signer, { ...valid(), iat: now - 2 * 86_400 }),
      ],
      [
        'an expired SET',
        'invalid_request',
        () => sign(signer, { ...valid(), exp: now - 600, iat: now - 900 }),
      ],
      ['a garbage body', 'invalid_request', async () => 'this is not a jwt'],
      ['an empty body', 'invalid_request', async () => ''],
    ];

    it.each(cases)('refuses %s with 400 %s and enqueues nothing', async (_name, err, make) => {
      const token = await make();
      const res = await post(gw, token);
      expect(res.status).toBe(400);
      expect(res.headers['content-language']).toBeTruthy();
      expect(res.body).toEqual({ err, description: expect.any(String) });
      expect(res.body.description.length).toBeGreaterThan(0);
      if (token) expect(res.text).not.toContain(token);
      expect(await gw.commands()).toEqual([]);
    });

    it.each(['application/jwt', 'application/json', 'text/plain', 'application/x-www-form-urlencoded'])(
      'refuses a valid SET sent as %s with invalid_request',
      async (type) => {
        const res = await post(gw, await sign(signer, valid()), type);
        expect(res.status).toBe(400);
        expect(res.headers['content-language']).toBeTruthy();
        expect(res.body).toEqual({ err: 'invalid_request', description: expect.any(String) });
        expect(await gw.commands()).toEqual([]);
      },
    );

    it('refuses a SET with one bad event as a whole (no partial enqueue)', async () => {
      const c = set({
        [`${CAEP}credential-change`]: { subject: issSub('good-user') },
        [`${RISC}account-disabled`]: { subject: { format: 'did', url: 'did:example:123' } },
      });
      const res = await post(gw, await sign(signer, c));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ err: 'invalid_request' });
      expect(await gw.commands()).toEqual([]);
    });
  });
});
