import type { Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '#config';
import { QUEUE_REDIS, type RedisClient } from '#redis';
import { Quarantine, QueueKeys } from '#revocation';

/** The quarantine on the queue Redis, bounded by QUARANTINE_MAX_ENTRIES and QUARANTINE_MAX_BYTES. */
export const quarantineProvider: Provider = {
  provide: Quarantine,
  inject: [QUEUE_REDIS, QueueKeys, APP_CONFIG],
  useFactory: (redis: RedisClient, keys: QueueKeys, config: AppConfig) =>
    new Quarantine(redis, keys, {
      maxEntries: config.quarantineMaxEntries,
      maxBytes: config.quarantineMaxBytes,
    }),
};
