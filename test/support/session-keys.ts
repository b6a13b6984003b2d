import type { Cluster, Redis } from 'ioredis';
import type { CreateSessionInput, CreatedSession, SessionStore } from '#session-store';
import { secretHash } from '../../libs/session-store/src/keys.js';

/**
 * Records every key a test's sessions (and the revocations of their users, groups and IdP sessions)
 * can write, so clean-up deletes exactly those keys without SCANning a shared Redis that may hold
 * millions of other keys.
 */
export class SessionKeys {
  private readonly keys = new Set<string>();

  constructor(readonly store: SessionStore) {}

  /** Creates a session through the store and records its keys. */
  async create(input: CreateSessionInput): Promise<CreatedSession> {
    this.user(input.userId);
    for (const g of input.groups ?? []) this.group(g);
    if (input.idpSessionId !== undefined) this.idpSession(input.idpSessionId);
    const created = await this.store.createSession(input);
    this.keys.add(this.store.keys.session(this.store.keys.userTag(input.userId), created.handle));
    return created;
  }

  /** A user's not-before stamps and index (a revocation writes them even if the user has no session). */
  user(userId: string): this {
    const tag = this.store.keys.userTag(userId);
    this.keys.add(this.store.keys.notBefore(tag));
    this.keys.add(this.store.keys.idpNotBefore(tag));
    this.keys.add(this.store.keys.userIndex(tag));
    return this;
  }

  group(groupId: string): this {
    this.keys.add(this.store.keys.group(groupId));
    return this;
  }

  idpSession(idpSessionId: string): this {
    const hash = secretHash(idpSessionId);
    this.keys.add(this.store.keys.idpIndex(hash));
    this.keys.add(this.store.keys.idpNotBeforeGlobal(hash));
    return this;
  }

  async delete(redis: Redis | Cluster): Promise<void> {
    const keys = [...this.keys];
    for (let i = 0; i < keys.length; i += 500)
      await Promise.all(keys.slice(i, i + 500).map((k) => redis.unlink(k)));
    this.keys.clear();
  }
}
