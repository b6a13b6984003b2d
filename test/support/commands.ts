import type { RevocationCommand, RevocationTarget } from '#revocation';

/** A valid RevocationCommand as the gateway would enqueue it (source admin unless given). */
export function command(
  id: string,
  target: RevocationTarget,
  notBefore: number,
  extra: Partial<RevocationCommand> = {},
): RevocationCommand {
  return {
    id,
    target,
    source: 'admin',
    eventType: `test.${target.type}`,
    eventId: id,
    notBefore,
    receivedAt: Date.now(),
    ...extra,
  };
}

/** Runs `fn` over `items`, `width` at a time, and returns the results in order. */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width)
    out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}
