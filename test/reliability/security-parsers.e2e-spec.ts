import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import {
  DEFAULT_PINGONE_MAPPING,
  EventRejectedError,
  JwtVerifier,
  parseLogoutToken,
  parsePingOneBody,
  parseSecurityEventToken,
  SSF_EVENTS,
  TemporaryFailureError,
} from '#identity-events';
import { RevocationCommand } from '#revocation';
import { createSigner, hs256WithPublicKey, nowSec, type TestSigner, unsignedJwt } from '../support/jwt.js';
import {
  BCL_AUD,
  BCL_EVENT,
  BCL_ISS,
  CAEP,
  logoutClaims,
  RISC,
  securityEventClaims,
  SSF_AUD,
  SSF_ISS,
  trustedIssuer,
} from '../support/jwt-issuers.js';
import {
  expectNoPrototypePollution,
  hostileHeader,
  json,
  jsonObject,
  jwtShaped,
  key,
  signRaw,
  text,
} from '../support/security-fuzz.js';

/**
 * The pure parsers, fuzzed directly (no HTTP, no Redis): parsePingOneBody never throws; the JWT
 * parsers, over a local JWKS, only ever resolve with valid commands or reject with EventRejectedError
 * (a TemporaryFailureError would mean "keys unreachable", impossible with a local JWKS, and becomes a
 * 503 at the endpoint). Nothing pollutes a prototype.
 */

const OPTIONS = () => ({ clockToleranceSec: 60, maxTokenAgeSec: 86_400, receivedAt: Date.now() });
const RUNS = 200;
const ENV_ID = '3f1c2a7e-5b8d-4e0a-9c61-2d7f4b8e1a90';

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(work: () => Promise<T>): Promise<Settled<T>> =>
  work().then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

const stringifies = (v: unknown) => {
  try {
    return typeof `${String(v)}` === 'string';
  } catch {
    return false;
  }
};

const segment = (token: string, i: number): Record<string, unknown> => {
  try {
    const v: unknown = JSON.parse(Buffer.from(token.split('.')[i] ?? '', 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/**
 * True for the one shape of input known to break the parsers' contract (a `typ` header or `jti` claim
 * that String() cannot convert: the parsers throw a TypeError). The fuzz properties skip it, so that
 * they keep testing everything else; the named tests in "JWT parser contract regressions" fail on it.
 */
const knownTypeErrorShape = (token: string | undefined) =>
  token !== undefined && (!stringifies(segment(token, 0)['typ']) || !stringifies(segment(token, 1)['jti']));

const REJECTION_CODES = [
  'invalid_request',
  'invalid_key',
  'invalid_issuer',
  'invalid_audience',
  'authentication_failed',
  'access_denied',
];

/** A rejection as the parsers promise it: an EventRejectedError with a known code, never quoting the token. */
function expectRejection(error: unknown, token: string | undefined): void {
  const described =
    error instanceof Error ? `${error.name}: ${error.message}` : `non-error thrown: ${String(error)}`;
  expect({ thrown: described, isEventRejected: error instanceof EventRejectedError }).toEqual({
    thrown: described,
    isEventRejected: true,
  });
  expect(error).not.toBeInstanceOf(TemporaryFailureError);
  const rejected = error as EventRejectedError;
  expect(REJECTION_CODES).toContain(rejected.code);
  expect(typeof rejected.description).toBe('string');
  expect(rejected.description.length).toBeGreaterThan(0);
  if (token && token.length > 8) expect(rejected.description).not.toContain(token);
}

describe('parsePingOneBody (fuzzed)', () => {
  const options = (environmentIds?: Set<string>) => ({
    mapping: DEFAULT_PINGONE_MAPPING,
    receivedAt: Date.now(),
    ...(environmentIds ? { environmentIds } : {}),
  });

  const someId = fc.oneof(fc.uuid(), text);
  const resource = fc.record(
    {
      type: fc.oneof(fc.constantFrom('USER', 'SESSION', 'GROUP', 'MEMBER_OF_GROUP'), text),
      id: fc.oneof(someId, json),
      href: fc.oneof(
        someId.map((u) => `https://api.pingone.com/v1/environments/${ENV_ID}/users/${u}/memberOfGroups/g`),
        fc.constant('/users/%E0%A4%A/memberOfGroups/x'),
        text,
      ),
      environment: fc.oneof(fc.record({ id: fc.oneof(fc.constant(ENV_ID), json) }), json),
    },
    { requiredKeys: ['type'] },
  );
  const event = fc.record(
    {
      id: fc.oneof(someId, json),
      recordedAt: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.constantFrom('-000001-01-01T00:00:00Z', '+275760-09-13T00:00:00Z', '1970-01-01T00:00:00Z'),
        text,
        json,
      ),
      action: fc.oneof(
        fc.record({ type: fc.oneof(fc.constantFrom(...Object.keys(DEFAULT_PINGONE_MAPPING)), text, json) }),
        fc.constantFrom({ type: 'toString' }, { type: '__proto__' }, { type: 'constructor' }),
        json,
      ),
      resources: fc.oneof(fc.array(resource, { maxLength: 4 }), json),
      result: fc.oneof(fc.constant({ status: 'SUCCESS' }), json),
      _embedded: fc.oneof(fc.record({ modifiedAttributes: fc.array(fc.oneof(text, json)) }), json),
      _links: fc.oneof(
        fc.constant({ self: { href: `https://api.pingone.com/v1/environments/${ENV_ID}/activities/1` } }),
        json,
      ),
      extra: jsonObject,
    },
    { requiredKeys: [] },
  );
  /** A PingOne-shaped body, JSON-encoded as is or with its keys turned into literal __proto__ keys. */
  const pingOneBody = fc
    .tuple(fc.array(event, { maxLength: 8 }), fc.constantFrom('array', 'single', 'wrapped', 'embedded'))
    .map(([events, shape]) => {
      const body =
        shape === 'array'
          ? events
          : shape === 'single'
            ? (events[0] ?? {})
            : shape === 'wrapped'
              ? { events }
              : { _embedded: { activities: events } };
      // JSON.stringify drops a __proto__ that was set as the prototype: put it back as a literal key.
      return JSON.stringify(body).replaceAll('"extra":{', '"__proto__":{"polluted":"yes"},"extra":{');
    });
  const nested = fc
    .tuple(fc.integer({ min: 1, max: 60_000 }), fc.constantFrom('[', '{"a":', '{"__proto__":'))
    .map(([depth, open]) => open.repeat(depth) + (open === '[' ? ']' : '1}').repeat(depth));

  const input = fc.oneof(
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    text,
    json.map((v) => JSON.stringify(v) ?? 'undefined'),
    pingOneBody,
    pingOneBody.map((s) => Buffer.from(s)),
    nested,
  );

  function check(body: Buffer | string | undefined, environmentIds?: Set<string>) {
    let result: ReturnType<typeof parsePingOneBody> | undefined;
    expect(() => (result = parsePingOneBody(body, options(environmentIds)))).not.toThrow();
    const r = result!;
    expect(r.commands.length + r.ignored.length + r.quarantinedEvents).toBe(r.received);
    expect(r.quarantined.length).toBeLessThanOrEqual(1);
    for (const c of r.commands) {
      expect(RevocationCommand.safeParse(c).success).toBe(true);
      expect(c.source).toBe('pingone');
      expect(Object.keys(DEFAULT_PINGONE_MAPPING)).toContain(c.eventType);
    }
    for (const q of r.quarantined) {
      expect(typeof q.raw).toBe('string');
      expect(q.reason.length).toBeGreaterThan(0);
    }
    expectNoPrototypePollution();
  }

  it('never throws on random bytes, text, JSON, PingOne-shaped or deeply nested bodies; every command is valid', () => {
    fc.assert(
      fc.property(input, (body) => check(body)),
      { numRuns: 300 },
    );
  });

  it('never throws with an environment allowlist either', () => {
    fc.assert(
      fc.property(input, (body) => check(body, new Set([ENV_ID]))),
      { numRuns: 150 },
    );
  });
});

describe('parseLogoutToken and parseSecurityEventToken over a local JWKS (fuzzed)', () => {
  let bclSigner: TestSigner;
  let ssfSigner: TestSigner;
  let other: TestSigner;
  let bcl: JwtVerifier;
  let ssf: JwtVerifier;

  beforeAll(async () => {
    [bclSigner, ssfSigner, other] = await Promise.all([
      createSigner('bcl-key', 'RS256'),
      createSigner('ssf-key', 'ES256'),
      createSigner('bcl-key', 'RS256'),
    ]);
    bcl = new JwtVerifier([trustedIssuer(bclSigner, BCL_ISS, BCL_AUD)]);
    ssf = new JwtVerifier([trustedIssuer(ssfSigner, SSF_ISS, SSF_AUD)]);
  });

  const parseBcl = (token: string | undefined) => settle(() => parseLogoutToken(token, bcl, OPTIONS()));
  const parseSet = (token: string | undefined) =>
    settle(() => parseSecurityEventToken(token, ssf, OPTIONS()));

  /** Either a valid oidc_bcl command or an EventRejectedError. */
  async function checkBcl(token: string | undefined) {
    const outcome = await parseBcl(token);
    if (outcome.ok) {
      expect(RevocationCommand.safeParse(outcome.value).success).toBe(true);
      expect(outcome.value.source).toBe('oidc_bcl');
      expect(outcome.value.eventId.startsWith(`${BCL_ISS}#`)).toBe(true);
    } else expectRejection(outcome.error, token);
    expectNoPrototypePollution();
    return outcome;
  }

  async function checkSet(token: string | undefined) {
    const outcome = await parseSet(token);
    if (outcome.ok) {
      for (const c of outcome.value.commands) {
        expect(RevocationCommand.safeParse(c).success).toBe(true);
        expect(c.source).toBe('ssf');
        expect(SSF_EVENTS.has(c.eventType)).toBe(true);
      }
    } else expectRejection(outcome.error, token);
    expectNoPrototypePollution();
    return outcome;
  }

  const unsignedInput = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom('', ' ', '.', '..', '...', 'a.b.c', 'e30.e30.', 'e30.e30.e30', '\u0000.\u0000.\u0000'),
    text,
    jwtShaped,
    fc.tuple(jsonObject, jsonObject).map(([h, p]) => unsignedJwt(p, h)),
  );

  it('rejects random text and JWT-shaped strings with EventRejectedError only (logout tokens)', async () => {
    await fc.assert(
      fc.asyncProperty(unsignedInput, async (token) => {
        fc.pre(!knownTypeErrorShape(token));
        const outcome = await checkBcl(token);
        expect(outcome.ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects random text and JWT-shaped strings with EventRejectedError only (SETs)', async () => {
    await fc.assert(
      fc.asyncProperty(unsignedInput, async (token) => {
        fc.pre(!knownTypeErrorShape(token));
        const outcome = await checkSet(token);
        expect(outcome.ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  /** Valid claims of each kind, each claim then possibly replaced by random JSON or removed. */
  const claimValue = <T>(valid: fc.Arbitrary<T>) =>
    fc.oneof(
      { arbitrary: valid, weight: 14 },
      { arbitrary: json, weight: 1 },
      { arbitrary: fc.constant(undefined), weight: 1 },
    );
  const subject = fc.oneof(
    fc.record({ format: fc.constant('iss_sub'), iss: fc.constant(BCL_ISS), sub: text }),
    fc.record({ format: fc.constant('email'), email: text }),
    fc.record({ format: fc.constant('opaque'), id: text }),
    fc.record({
      format: fc.constant('complex'),
      user: fc.oneof(fc.record({ format: fc.constant('opaque'), id: text }), json),
      session: fc.oneof(fc.record({ format: fc.constant('opaque'), id: text }), json),
    }),
    json,
  );
  const goodSubject = fc
    .string({ minLength: 1, maxLength: 256 })
    .chain((id) => fc.constantFrom({ format: 'opaque', id }, { format: 'email', email: id }));
  const ssfEventType = fc.oneof(fc.constantFrom(...SSF_EVENTS), fc.constantFrom(`${CAEP}x`, `${RISC}y`), key);
  const times = () => {
    const now = nowSec();
    return {
      iat: fc.oneof(
        { arbitrary: fc.integer({ min: now - 3600, max: now + 30 }), weight: 10 },
        { arbitrary: fc.integer({ min: -1, max: 2 ** 40 }), weight: 1 },
        { arbitrary: fc.double(), weight: 1 },
      ),
      exp: fc.oneof(
        { arbitrary: fc.integer({ min: now + 1, max: now + 86_400 }), weight: 10 },
        { arbitrary: fc.integer(), weight: 1 },
        { arbitrary: fc.double(), weight: 1 },
      ),
    };
  };

  const bclClaims = () =>
    fc
      .record({
        iss: claimValue(fc.constant(BCL_ISS)),
        aud: claimValue(fc.oneof(fc.constant(BCL_AUD), fc.constant([BCL_AUD, 'x']))),
        iat: claimValue(times().iat),
        exp: claimValue(times().exp),
        jti: claimValue(fc.uuid()),
        sub: claimValue(text),
        sid: claimValue(text),
        events: claimValue(fc.constant({ [BCL_EVENT]: {} })),
        nonce: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: json, weight: 1 }),
        extra: jsonObject,
      })
      .map(({ extra, ...claims }) => ({ ...extra, ...claims }));

  const ssfClaims = () =>
    fc
      .record({
        iss: claimValue(fc.constant(SSF_ISS)),
        aud: claimValue(fc.constant(SSF_AUD)),
        iat: claimValue(times().iat),
        jti: claimValue(fc.uuid()),
        sub_id: claimValue(
          fc.oneof({ arbitrary: goodSubject, weight: 3 }, { arbitrary: subject, weight: 1 }),
        ),
        events: claimValue(
          fc.oneof(
            {
              arbitrary: fc
                .tuple(
                  fc.constantFrom(...SSF_EVENTS),
                  fc.oneof(
                    fc.constant({}),
                    goodSubject.map((s) => ({ subject: s })),
                  ),
                )
                .map(([type, body]) => ({ [type]: body })),
              weight: 4,
            },
            {
              arbitrary: fc.dictionary(
                ssfEventType,
                fc.oneof(
                  fc.record(
                    {
                      subject,
                      event_timestamp: fc.oneof(fc.integer(), fc.double()),
                      reason_admin: fc.oneof(text, json),
                    },
                    { requiredKeys: [] },
                  ),
                  json,
                ),
                { maxKeys: 4 },
              ),
              weight: 2,
            },
          ),
        ),
        extra: jsonObject,
      })
      .map(({ extra, ...claims }) => ({ ...extra, ...claims }));

  /** Text as it is, anything else as its JSON (the payload segment is then not a claims object). */
  const asText = (v: unknown) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null'));

  /** Removes undefined claims, so that "missing" is really missing in the token. */
  const defined = (claims: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));

  const header = (kid: string, alg: string, typ: string) =>
    fc.oneof(
      { arbitrary: fc.constant({ alg, kid, typ }), weight: 10 },
      { arbitrary: fc.constant({ alg, kid }), weight: 1 },
      { arbitrary: fc.record({ alg: fc.constant(alg), kid: fc.constant(kid), typ: json }), weight: 1 },
      { arbitrary: jsonObject.map((h) => ({ ...h, alg, kid })), weight: 1 },
      { arbitrary: hostileHeader, weight: 1 },
    );

  it('handles validly signed logout tokens of random claims and headers: a valid command or EventRejectedError', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        header(bclSigner.kid, 'RS256', 'logout+jwt'),
        bclClaims(),
        fc.constantFrom('claims', 'claims', 'claims', 'claims', 'text', 'json'),
        fc.oneof(text, json),
        async (h, claims, payloadKind, junk) => {
          const payload =
            payloadKind === 'claims' ? defined(claims) : payloadKind === 'text' ? asText(junk) : junk;
          const token = await signRaw(bclSigner, h, payload);
          fc.pre(!knownTypeErrorShape(token));
          const outcome = await checkBcl(token);
          if (outcome.ok) accepted++;
        },
      ),
      { numRuns: 300 },
    );
    // The generator is not all noise: a good share of the tokens must get through.
    expect(accepted).toBeGreaterThan(10);
  });

  it('handles validly signed SETs of random claims and headers: valid commands or EventRejectedError', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        header(ssfSigner.kid, 'ES256', 'secevent+jwt'),
        ssfClaims(),
        fc.constantFrom('claims', 'claims', 'claims', 'claims', 'text', 'json'),
        fc.oneof(text, json),
        async (h, claims, payloadKind, junk) => {
          const payload =
            payloadKind === 'claims' ? defined(claims) : payloadKind === 'text' ? asText(junk) : junk;
          const token = await signRaw(ssfSigner, h, payload);
          fc.pre(!knownTypeErrorShape(token));
          const outcome = await checkSet(token);
          if (outcome.ok && outcome.value.commands.length > 0) accepted++;
        },
      ),
      { numRuns: 300 },
    );
    expect(accepted).toBeGreaterThan(10);
  });

  it('rejects the classic forgeries of a logout token with EventRejectedError', async () => {
    const now = nowSec();
    const claims = {
      iss: BCL_ISS,
      aud: BCL_AUD,
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: 'u',
      events: { [BCL_EVENT]: {} },
    };
    const forged = [
      unsignedJwt(claims, { typ: 'logout+jwt' }),
      unsignedJwt(claims, { typ: 'logout+jwt', kid: bclSigner.kid }),
      await hs256WithPublicKey(bclSigner, claims, { typ: 'logout+jwt' }),
      await signRaw(other, { alg: 'RS256', kid: bclSigner.kid, typ: 'logout+jwt' }, claims),
      await signRaw(other, { alg: 'RS256', kid: bclSigner.kid, jwk: other.publicJwk }, claims),
      await signRaw(other, { alg: 'RS256', jku: 'https://evil.example/jwks', kid: 'evil' }, claims),
    ];
    for (const token of forged) {
      const outcome = await checkBcl(token);
      expect(outcome.ok).toBe(false);
      expect((outcome as { error: EventRejectedError }).error.code).toBe('invalid_key');
    }
    // The same claims, properly signed, pass: the forgeries failed on their signature alone.
    expect((await checkBcl(await signRaw(bclSigner, { alg: 'RS256', kid: bclSigner.kid }, claims))).ok).toBe(
      true,
    );
  });
});

/**
 * Regressions found by the fuzzing above. Each names the production behaviour it pins down.
 */
describe('JWT parser contract regressions', () => {
  let bclSigner: TestSigner;
  let ssfSigner: TestSigner;
  let bcl: JwtVerifier;
  let ssf: JwtVerifier;

  beforeAll(async () => {
    [bclSigner, ssfSigner] = await Promise.all([
      createSigner('bcl-key', 'RS256'),
      createSigner('ssf-key', 'ES256'),
    ]);
    bcl = new JwtVerifier([trustedIssuer(bclSigner, BCL_ISS, BCL_AUD)]);
    ssf = new JwtVerifier([trustedIssuer(ssfSigner, SSF_ISS, SSF_AUD)]);
  });

  /** Without sid (undefined claims are left out of the token). */
  const bclClaims = (over: Record<string, unknown> = {}) => logoutClaims({ sid: undefined, ...over });
  const setClaims = (over: Record<string, unknown> = {}) =>
    securityEventClaims(
      { [`${CAEP}credential-change`]: {} },
      { sub_id: { format: 'opaque', id: 'user-1' }, ...over },
    );

  it.each([
    ['an object without toString/valueOf', { toString: 1, valueOf: 1 }],
    ['an object whose toString is not callable', { toString: 'logout+jwt' }],
  ])(
    'parseLogoutToken refuses a typ header that is %s with EventRejectedError, not a TypeError',
    async (_what, typ) => {
      // Unsigned and signed alike: the typ check runs before the signature is looked at.
      for (const token of [
        unsignedJwt(bclClaims(), { typ }),
        await signRaw(bclSigner, { alg: 'RS256', kid: bclSigner.kid, typ }, bclClaims()),
      ]) {
        const outcome = await settle(() => parseLogoutToken(token, bcl, OPTIONS()));
        expect(outcome.ok).toBe(false);
        expectRejection((outcome as { error: unknown }).error, token);
      }
    },
  );

  it('parseSecurityEventToken refuses a typ header without a usable toString with EventRejectedError, not a TypeError', async () => {
    const typ = { toString: 1, valueOf: 1 };
    const token = await signRaw(ssfSigner, { alg: 'ES256', kid: ssfSigner.kid, typ }, setClaims());
    const outcome = await settle(() => parseSecurityEventToken(token, ssf, OPTIONS()));
    expect(outcome.ok).toBe(false);
    expectRejection((outcome as { error: unknown }).error, token);
  });

  it.each([
    ['an object', { n: 1 }],
    ['an object without a usable toString', { toString: 1, valueOf: 1 }],
    ['an array', ['a', 'b']],
  ])(
    'parseLogoutToken refuses a signed token whose jti is %s (the event id would not identify it)',
    async (_what, jti) => {
      const token = await signRaw(bclSigner, { alg: 'RS256', kid: bclSigner.kid }, bclClaims({ jti }));
      const outcome = await settle(() => parseLogoutToken(token, bcl, OPTIONS()));
      expect(outcome.ok ? { eventId: outcome.value.eventId } : 'rejected').toBe('rejected');
      expectRejection((outcome as { error: unknown }).error, token);
    },
  );

  it('parseLogoutToken gives two logouts with different object jti values different event ids, or rejects them', async () => {
    const ids = [];
    for (const jti of [{ a: 1 }, { b: 2 }]) {
      const token = await signRaw(
        bclSigner,
        { alg: 'RS256', kid: bclSigner.kid },
        bclClaims({ jti, sub: undefined, sid: `sid-${JSON.stringify(jti)}` }),
      );
      const outcome = await settle(() => parseLogoutToken(token, bcl, OPTIONS()));
      ids.push(outcome.ok ? outcome.value.id : `rejected-${ids.length}`);
    }
    // Two different logouts mapped to one command id: the second is deduplicated away, never acted on.
    expect(new Set(ids).size).toBe(2);
  });

  it.each([
    ['an object', { n: 1 }],
    ['an object without a usable toString', { toString: 1, valueOf: 1 }],
  ])('parseSecurityEventToken refuses a signed SET whose jti is %s', async (_what, jti) => {
    const token = await signRaw(ssfSigner, { alg: 'ES256', kid: ssfSigner.kid }, setClaims({ jti }));
    const outcome = await settle(() => parseSecurityEventToken(token, ssf, OPTIONS()));
    expect(outcome.ok ? outcome.value.commands.map((c) => c.eventId) : 'rejected').toBe('rejected');
    expectRejection((outcome as { error: unknown }).error, token);
  });
});
