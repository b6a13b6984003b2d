const MAX_PART = 2n ** 64n - 1n;

/**
 * A Redis stream entry id (`<ms>-<seq>`, each part at most 2^64 - 1) in the form Redis answers with
 * (no leading zeros), or undefined for anything else: Redis refuses such an id with an error, so a
 * caller with an id from outside checks it first and answers "no such entry" instead.
 */
export function canonicalStreamId(id: string): string | undefined {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  if (!m) return undefined;
  const [ms, seq] = [BigInt(m[1]!), BigInt(m[2]!)];
  return ms <= MAX_PART && seq <= MAX_PART ? `${ms}-${seq}` : undefined;
}

/** Whether `id` is a Redis stream entry id (see canonicalStreamId). */
export const isStreamId = (id: string): boolean => canonicalStreamId(id) !== undefined;
