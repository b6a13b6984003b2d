export { TokenVerifier, MAX_TOKEN_CHARS } from './token-verifier.js';
export type {
  TokenVerifierOptions,
  VerificationSource,
  VerifierMetrics,
  VerifyResult,
} from './token-verifier.js';
export { ASYMMETRIC_ALGORITHMS } from './issuer.js';
export type { InactiveReason, IntrospectionClient, TokenClaims, TokenIssuerConfig } from './issuer.js';
export { TokenVerifierUnavailableError } from './errors.js';
