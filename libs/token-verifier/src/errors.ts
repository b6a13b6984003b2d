/**
 * The verifier could not decide, through no fault of the token: Redis (`redis`) or the issuer's
 * keys or introspection endpoint (`idp`) were out of reach. An HTTP layer answers 503. The message
 * never holds the token.
 */
export class TokenVerifierUnavailableError extends Error {
  constructor(
    readonly dependency: 'redis' | 'idp',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenVerifierUnavailableError';
  }
}
