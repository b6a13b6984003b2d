import { expect } from '@jest/globals';
import fc from 'fast-check';
import { webcrypto } from 'node:crypto';
import type { TestSigner } from './jwt.js';

/**
 * Building blocks of the security suites (test/reliability/security-*.e2e-spec.ts): JWTs signed byte
 * for byte as given (any header, any payload text, even invalid JSON), and fast-check arbitraries of
 * hostile input.
 */

export const b64url = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const SIGN_PARAMS: Record<
  string,
  webcrypto.AlgorithmIdentifier | webcrypto.RsaPssParams | webcrypto.EcdsaParams
> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5' },
  PS256: { name: 'RSA-PSS', saltLength: 32 },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
};

/**
 * A compact JWS over exactly these header and payload texts (objects are JSON-encoded, strings are
 * taken as they are), signed with the signer's private key: a "validly signed" token whatever it holds.
 */
export async function signRaw(signer: TestSigner, header: unknown, payload: unknown): Promise<string> {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const params = SIGN_PARAMS[signer.alg];
  if (!params) throw new Error(`signRaw: no WebCrypto parameters for ${signer.alg}`);
  const signature = await webcrypto.subtle.sign(
    params,
    signer.privateKey as unknown as webcrypto.CryptoKey,
    new TextEncoder().encode(input),
  );
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

/** Keys that have hurt JavaScript parsers before: prototype setters and the primitive conversions. */
export const TRICKY_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'toJSON'];

/** An object key: mostly random, often one of TRICKY_KEYS or a JWT claim / header name. */
export const key = fc.oneof(
  { arbitrary: fc.string({ maxLength: 12 }), weight: 3 },
  { arbitrary: fc.constantFrom(...TRICKY_KEYS), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      'alg',
      'kid',
      'typ',
      'iss',
      'aud',
      'iat',
      'exp',
      'jti',
      'sub',
      'sid',
      'events',
    ),
    weight: 1,
  },
);

/** Any JSON value, whose objects often carry TRICKY_KEYS. */
export const json: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 20 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** A JSON object (a JWT header or claims set), often with TRICKY_KEYS. */
export const jsonObject = fc.dictionary(key, json, { maxKeys: 6 });

/** Text of every kind: ASCII, any Unicode (lone surrogates too), and base64url-looking runs. */
export const text = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc
    .base64String({ maxLength: 60 })
    .map((s) => s.replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_')),
);

/** Three dot-separated segments that look like a JWT: random JSON (or text) in each, no valid signature. */
export const jwtShaped = fc
  .tuple(
    fc.oneof(jsonObject.map(b64url), json.map(b64url), text),
    fc.oneof(jsonObject.map(b64url), json.map(b64url), text),
    fc.oneof(fc.constant(''), text),
    fc.constantFrom(3, 3, 3, 2, 5),
  )
  .map(([h, p, s, parts]) =>
    parts === 3 ? `${h}.${p}.${s}` : parts === 2 ? `${h}.${p}` : `${h}.${p}.${s}.${s}.${s}`,
  );

/** A header with `alg: none`, or HS256, or a real algorithm, and random other fields. */
export const hostileHeader = fc
  .tuple(
    jsonObject,
    fc.constantFrom('none', 'None', 'HS256', 'RS256', 'ES256', 'PS256', 'EdDSA', 'RSA-OAEP', ''),
  )
  .map(([rest, alg]) => ({ ...rest, alg }));

/** Content types a client might send: the right ones, the wrong ones, and garbage. */
export const contentType = fc.oneof(
  fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=UTF-8',
    'application/secevent+jwt',
    'application/jwt',
    'application/json',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    'APPLICATION/SECEVENT+JWT',
    'application/x-www-form-urlencoded;;;',
    ';',
    ' ',
  ),
  fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
);

/** Asserts that nothing (a parser, a request) polluted the prototypes of plain objects or arrays. */
export function expectNoPrototypePollution(): void {
  const probe = {} as Record<string, unknown>;
  for (const k of ['polluted', 'admin', 'isAdmin', 'scopes'])
    expect({ key: k, object: probe[k], array: ([] as unknown as Record<string, unknown>)[k] }).toEqual({
      key: k,
      object: undefined,
      array: undefined,
    });
  expect(Object.keys(Object.prototype)).toEqual([]);
  expect(Object.keys(Array.prototype)).toEqual([]);
}
