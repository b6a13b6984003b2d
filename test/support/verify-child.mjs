// A second process verifying tokens with the built verifier, for tests of what spans processes (the
// stampede). Reads its settings from VERIFY_CHILD (JSON: redisUrl, prefix, tagSecret, issuers), says
// "ready", then for each line `<count> <token>` on stdin verifies that token `count` times at once and
// prints one JSON line of the results' `active` and `source` counts.
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { SessionStore } from '../../dist/libs/session-store/src/index.js';
import { TokenVerifier } from '../../dist/libs/token-verifier/src/index.js';

const settings = JSON.parse(process.env.VERIFY_CHILD);
const redis = new Redis(settings.redisUrl);
const store = new SessionStore({ redis, prefix: settings.prefix, tagSecret: settings.tagSecret });
const verifier = new TokenVerifier({ store, issuers: settings.issuers });
await redis.ping();
console.log('ready');
for await (const line of createInterface({ input: process.stdin })) {
  const [count, token] = line.split(' ');
  const results = await Promise.all(Array.from({ length: Number(count) }, () => verifier.verify(token)));
  const tally = {};
  for (const r of results) {
    const key = r.active ? `active:${r.source}` : `inactive:${r.reason}`;
    tally[key] = (tally[key] ?? 0) + 1;
  }
  console.log(JSON.stringify(tally));
}
await redis.quit();
