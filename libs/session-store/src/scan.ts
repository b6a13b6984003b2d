import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './scripts.js';

/** SCANs every master (one for a standalone Redis) for keys matching `pattern`, a batch at a time. */
export async function* scanKeys(
  redis: RedisClient,
  pattern: string,
  options: { count?: number; type?: string } = {},
): AsyncGenerator<{ node: Redis; keys: string[] }> {
  const nodes = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = options.type
        ? await node.scan(cursor, 'MATCH', pattern, 'COUNT', options.count ?? 1000, 'TYPE', options.type)
        : await node.scan(cursor, 'MATCH', pattern, 'COUNT', options.count ?? 1000);
      cursor = next;
      if (keys.length) yield { node, keys };
    } while (cursor !== '0');
  }
}
