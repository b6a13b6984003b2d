/** Every error the session store throws on purpose; `code` is stable, the message never holds a secret. */
export class SessionStoreError extends Error {
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'REVOKED',
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The caller passed something the store cannot accept; nothing was written. */
export class InvalidArgumentError extends SessionStoreError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** The session or token would be born before the user's (or IdP session's) not-before: refused, nothing written. */
export class SessionRevokedError extends SessionStoreError {
  constructor(message = 'issued before the not-before of its user or IdP session') {
    super('REVOKED', message);
  }
}
