import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './scripts.js';

/** Where a walk over the keyspace stands: the SCAN cursor of each master ("host:port") still to walk. */
export type ScanPosition = Record<string, string>;

export const nodeId = (node: Redis): string => `${node.options.host}:${node.options.port}`;

interface ScanOptions {
  count?: number;
  type?: string;
  /** Resume a walk: only these masters, each from its cursor. Default: every master from the start. */
  from?: ScanPosition;
}

/**
 * SCANs every master (one for a standalone Redis) for keys matching `pattern`, one page per SCAN
 * call, empty pages included; each page says where the walk stands after it (`next`: undefined once
 * every master is done), so a caller may stop after any page and resume from there.
 */
export async function* scanPages(
  redis: RedisClient,
  pattern: string,
  options: ScanOptions = {},
): AsyncGenerator<{ node: Redis; keys: string[]; next: ScanPosition | undefined }> {
  const all = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
  const nodes = options.from ? all.filter((n) => options.from![nodeId(n)] !== undefined) : all;
  const position: ScanPosition = Object.fromEntries(
    nodes.map((n) => [nodeId(n), options.from?.[nodeId(n)] ?? '0']),
  );
  for (const node of nodes) {
    let cursor = position[nodeId(node)]!;
    do {
      const [next, keys] = options.type
        ? await node.scan(cursor, 'MATCH', pattern, 'COUNT', options.count ?? 1000, 'TYPE', options.type)
        : await node.scan(cursor, 'MATCH', pattern, 'COUNT', options.count ?? 1000);
      cursor = next;
      if (cursor === '0') delete position[nodeId(node)];
      else position[nodeId(node)] = cursor;
      yield { node, keys, next: Object.keys(position).length ? { ...position } : undefined };
    } while (cursor !== '0');
  }
}

/** SCANs every master (one for a standalone Redis) for keys matching `pattern`, a batch at a time. */
export async function* scanKeys(
  redis: RedisClient,
  pattern: string,
  options: { count?: number; type?: string } = {},
): AsyncGenerator<{ node: Redis; keys: string[] }> {
  for await (const { node, keys } of scanPages(redis, pattern, options))
    if (keys.length) yield { node, keys };
}
