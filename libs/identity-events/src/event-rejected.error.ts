/**
 * A delivery we refuse. `code` is the protocol's error code (RFC 8935 for SSF, OAuth-style for
 * back-channel logout); `description` is safe to return: it never quotes a token.
 */
export class EventRejectedError extends Error {
  constructor(
    readonly code:
      | 'invalid_request'
      | 'invalid_key'
      | 'invalid_issuer'
      | 'invalid_audience'
      | 'authentication_failed'
      | 'access_denied',
    readonly description: string,
  ) {
    super(description);
    this.name = 'EventRejectedError';
  }
}

/** We could not judge the delivery right now (e.g. the issuer's keys are unreachable): the sender should retry. */
export class TemporaryFailureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemporaryFailureError';
  }
}
