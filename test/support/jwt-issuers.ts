import { randomUUID } from 'node:crypto';
import { nowSec, signJwt, type TestSigner } from './jwt.js';

/**
 * The JWT issuers the suites make the gateway trust (OIDC back-channel logout, SSF, admin access
 * tokens): their ids, how the gateway is configured for them, and valid tokens of each kind. The keys
 * themselves come from createSigner in jwt.ts.
 */

/** The `events` key every back-channel logout token must hold. */
export const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** The OpenID provider and client id of the back-channel logout suites. */
export const BCL_ISS = 'https://idp.example.com';
export const BCL_AUD = 'client-app';
/** The SSF transmitter and our receiver (the audience of its SETs). */
export const SSF_ISS = 'https://ssf-transmitter.example.com';
export const SSF_AUD = 'https://receiver.example.com/ssf';
/** The prefixes of the CAEP and RISC event types of SETs. */
export const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';

type Claims = Record<string, unknown>;

/** One trusted issuer as JwtVerifier and CONFIG_FILE take it: tokens of `issuer` for `audience`, checked against the signer's keys. */
export function trustedIssuer(signer: TestSigner, issuer: string, audience: string | string[]) {
  return { issuer, audience, jwks: signer.jwks };
}

/**
 * The gateway settings that trust one issuer with a static JWKS: `<prefix>_ISSUER`, `_AUDIENCE` and
 * `_JWKS` (OIDC_BCL_* for back-channel logout, SSF_* for SETs, ADMIN_JWT_* for admin access tokens).
 */
export function issuerEnv(
  prefix: 'OIDC_BCL' | 'SSF' | 'ADMIN_JWT',
  signer: TestSigner,
  issuer: string,
  audience: string,
): Record<string, string> {
  return {
    [`${prefix}_ISSUER`]: issuer,
    [`${prefix}_AUDIENCE`]: audience,
    [`${prefix}_JWKS`]: JSON.stringify(signer.jwks),
  };
}

/** A valid logout token's claims (sub and sid, a fresh jti), with `over` applied (undefined removes a claim). */
export function logoutClaims(over: Claims = {}, iss = BCL_ISS, aud: string | string[] = BCL_AUD): Claims {
  const iat = nowSec();
  return {
    iss,
    aud,
    iat,
    exp: iat + 120,
    jti: randomUUID(),
    sub: 'user-1',
    sid: 'sid-1',
    events: { [BCL_EVENT]: {} },
    ...over,
  };
}

/** A SET's claims (a fresh jti): `events` as given, with `over` applied (undefined removes a claim). */
export function securityEventClaims(events: unknown, over: Claims = {}): Claims {
  return { iss: SSF_ISS, aud: SSF_AUD, iat: nowSec(), jti: randomUUID(), events, ...over };
}

/** Signs with the `typ` header a token of its kind carries; `header` overrides it (`typ: undefined` drops it). */
const typed =
  (typ: string) =>
  (signer: TestSigner, claims: Claims, header: Record<string, unknown> = {}): Promise<string> =>
    signJwt(signer, claims, { header: { typ, ...header } });

/** A back-channel logout token (typ logout+jwt). */
export const signLogoutToken = typed('logout+jwt');
/** A Security Event Token (typ secevent+jwt). */
export const signSet = typed('secevent+jwt');
/** An admin access token (typ at+jwt, RFC 9068). */
export const signAccessToken = typed('at+jwt');
