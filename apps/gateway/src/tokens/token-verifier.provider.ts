import { Logger, type Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { SessionStore } from '#session-store';
import { TokenVerifier } from '#token-verifier';

/** The token verifier of POST /oauth2/introspect: the configured issuers, cached in the session store. */
export const tokenVerifierProvider: Provider = {
  provide: TokenVerifier,
  inject: [APP_CONFIG, SessionStore, RevokerMetrics],
  useFactory: (config: AppConfig, store: SessionStore | null, metrics: RevokerMetrics): TokenVerifier => {
    // loadConfig requires SESSION_TAG_SECRET with token issuers, so the store exists here.
    if (!store) throw new Error('the token verifier needs the session store (SESSION_TAG_SECRET)');
    const log = new Logger('TokenVerifier');
    return new TokenVerifier({
      store,
      issuers: config.tokens.issuers,
      cache: {
        maxTtlSeconds: config.tokens.maxTtlSeconds,
        negativeTtlSeconds: config.tokens.negativeTtlSeconds,
        negativeMaxEntries: config.tokens.negativeMaxEntries,
      },
      clockToleranceSeconds: config.jwtClockToleranceSec,
      // A flight outlives its slowest IdP call (and the JWKS fetch), or a second caller would start one.
      flightLeaseMs:
        Math.max(5000, ...config.tokens.issuers.map((i) => i.introspection?.timeoutMs ?? 3000)) + 2000,
      whenRedisDown: config.tokens.whenRedisDown,
      logger: { warn: (message) => log.warn(message) },
      metrics: {
        verification: (source, outcome) => metrics.tokenVerifications.inc({ source, outcome }),
        idpCall: (outcome) => metrics.tokenIdpCalls.inc({ outcome }),
        flightWait: () => metrics.tokenFlightWaits.inc(),
        cacheLookup: (result) => metrics.tokenCacheLookups.inc({ result }),
        uncheckedJwt: () => metrics.tokenUncheckedJwts.inc(),
      },
    });
  },
};
