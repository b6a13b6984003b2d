import { type DynamicModule, Inject, Injectable, Module, Optional } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import { APP_CONFIG, type AppConfig } from '#config';
import { type RedisClient, SESSION_REDIS } from '#redis';
import { SessionStore } from '#session-store';
import { TokenVerifier } from '#token-verifier';
import { tokenVerifierProvider } from '../tokens/token-verifier.provider.js';
import { serveForwardAuth } from './forward-auth.js';
import { serveOidcLogin } from './oidc-login.js';

/**
 * The edge's routes: forward auth (`/auth/verify`) for reverse proxies and, with OIDC_ISSUER, the
 * OpenID Connect login (`/auth/login`, `/auth/callback`, `/auth/logout`). Plain Fastify routes, not
 * controllers: forward auth answers every request a proxied application receives.
 */
@Injectable()
export class EdgeRoutes {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SessionStore) private readonly store: SessionStore | null,
    @Inject(SESSION_REDIS) private readonly redis: RedisClient | null,
    @Optional() @Inject(TokenVerifier) private readonly verifier?: TokenVerifier,
  ) {}

  /** Adds the routes to `fastify`; nothing without a session store (SESSION_TAG_SECRET) to read. */
  mount(fastify: FastifyInstance): void {
    const { config, store, redis } = this;
    if (!store || !redis) return;
    const refresher = config.edge.oidc
      ? serveOidcLogin(fastify, config, config.edge.oidc, store, redis)
      : undefined;
    serveForwardAuth(fastify, config, store, this.verifier, refresher);
  }
}

/**
 * The edge: what a reverse proxy asks on every request, and the login that makes the sessions it
 * checks. It uses the session store and, with token issuers, the token verifier (which it provides
 * and exports: the gateway's RFC 7662 endpoint shares it), nothing else. The gateway hosts it by
 * default; `npm run start:edge` runs it alone (`main.ts` here), scaled with user traffic.
 */
@Module({})
export class EdgeModule {
  static forRoot(config: AppConfig): DynamicModule {
    const tokens = config.tokens.issuers.length > 0 ? [tokenVerifierProvider] : [];
    return {
      module: EdgeModule,
      providers: [EdgeRoutes, ...tokens],
      exports: [EdgeRoutes, ...(tokens.length ? [TokenVerifier] : [])],
    };
  }
}
