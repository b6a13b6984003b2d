import type { PingOneParseOptions } from './pingone.parser.js';

/**
 * A PingOne delivery, shaped as PingOne sends them, of one event per id in `eventIds`, each of which
 * `parsePingOneBody` with these options turns into a revocation of `userId`: for a gateway to run its
 * delivery path warm before it says it is ready (it marks the events' command ids seen first, so they
 * enqueue nothing). The action type is the first the mapping revokes a user for; undefined when there is
 * none. One event is sent as an object, several as an array, as PingOne does.
 */
export function pingOneWarmUpBody(
  eventIds: readonly string[],
  userId: string,
  options: Pick<PingOneParseOptions, 'mapping' | 'environmentIds'>,
): string | undefined {
  const type = Object.keys(options.mapping).find((t) => options.mapping[t]!.target === 'user');
  if (!type) return undefined;
  const watched = options.mapping[type]!.modifiedAttributes;
  const environment = options.environmentIds?.values().next().value ?? 'revoker-warm-up';
  const base = `https://api.pingone.com/v1/environments/${environment}`;
  const at = new Date().toISOString();
  const events = eventIds.map((id) => ({
    _links: { self: { href: `${base}/activities/${id}` } },
    id,
    recordedAt: at,
    createdAt: at,
    actors: { client: { id: 'revoker-warm-up', type: 'CLIENT', environment: { id: environment } } },
    action: { type, description: type },
    resources: [
      { type: 'USER', id: userId, environment: { id: environment }, href: `${base}/users/${userId}` },
    ],
    result: { status: 'SUCCESS', description: 'warm-up' },
    ...(watched ? { _embedded: { modifiedAttributes: watched } } : {}),
  }));
  return JSON.stringify(events.length === 1 ? events[0] : events);
}
