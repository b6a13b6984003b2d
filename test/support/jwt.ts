import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import type { KeyObject } from 'node:crypto';

/** A signing key pair of a test issuer, with its public JWKS (one key, with a kid). */
export interface TestSigner {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  jwks: { keys: JWK[] };
  /** The public key as SPKI PEM (the bytes an HS256 key-confusion attack would use as a secret). */
  publicPem: string;
}

export async function createSigner(kid: string, alg = 'RS256'): Promise<TestSigner> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    privateKey,
    publicKey,
    publicJwk,
    jwks: { keys: [publicJwk] },
    publicPem: await exportSPKI(publicKey),
  };
}

export interface SignOptions {
  /** Protected header fields over { alg, kid } (set `typ: undefined` to leave it out). */
  header?: Record<string, unknown>;
  /** Sign with this key instead of the signer's private key (e.g. another issuer's key under this kid). */
  key?: CryptoKey | KeyObject | Uint8Array;
}

/** Signs `payload` exactly as given (no claims are added). */
export async function signJwt(signer: TestSigner, payload: JWTPayload, options: SignOptions = {}) {
  const header = { alg: signer.alg, kid: signer.kid, ...options.header };
  for (const [k, v] of Object.entries(header)) if (v === undefined) delete header[k as keyof typeof header];
  return new SignJWT(payload)
    .setProtectedHeader(header as { alg: string })
    .sign(options.key ?? signer.privateKey);
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsecured JWT (`alg: none`, empty signature), hand-crafted since jose will not make one. */
export function unsignedJwt(payload: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', ...header })}.${b64url(payload)}.`;
}

/** Signs with HS256 using the signer's public key bytes (PEM) as the HMAC secret: the key-confusion attack. */
export async function hs256WithPublicKey(
  signer: TestSigner,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', kid: signer.kid, ...header })
    .sign(new TextEncoder().encode(signer.publicPem));
}

/** Seconds since the epoch, as JWT time claims want them. */
export const nowSec = () => Math.floor(Date.now() / 1000);
