const MAX_PART = 2n ** 64n - 1n;

/**
 * Whether `id` is a Redis stream entry id (`<ms>-<seq>`, each part at most 2^64 - 1): Redis refuses
 * any other with an error, so a caller with an id from outside checks it first and answers "no such
 * entry" instead.
 */
export function isStreamId(id: string): boolean {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return m !== null && BigInt(m[1]!) <= MAX_PART && BigInt(m[2]!) <= MAX_PART;
}
