import { describe, expect, it } from '@jest/globals';
import { commandId } from '#revocation';
import { DEFAULT_PINGONE_MAPPING, type PingOneMapping } from './pingone-mapping.js';
import { pingOneWarmUpBody } from './pingone-warm-up.js';
import { parsePingOneBody } from './pingone.parser.js';

const parse = (
  body: string | undefined,
  options: { mapping: PingOneMapping; environmentIds?: Set<string> },
) => parsePingOneBody(body, { ...options, receivedAt: Date.now() });

describe('pingOneWarmUpBody', () => {
  it('is a delivery the parser turns into one revocation of the user per event', () => {
    const body = pingOneWarmUpBody(['w-1'], 'warm-user', { mapping: DEFAULT_PINGONE_MAPPING });
    const parsed = parse(body, { mapping: DEFAULT_PINGONE_MAPPING });
    expect(parsed).toMatchObject({ received: 1, ignored: [], quarantined: [] });
    expect(parsed.commands).toEqual([
      expect.objectContaining({
        id: commandId('pingone', 'w-1'),
        target: { type: 'user', userId: 'warm-user' },
        source: 'pingone',
      }),
    ]);
    // One event is an object, as PingOne sends it.
    expect(JSON.parse(body!)).toMatchObject({ id: 'w-1' });
  });

  it('holds several events as an array', () => {
    const ids = ['a', 'b', 'c'];
    const parsed = parse(pingOneWarmUpBody(ids, 'u', { mapping: DEFAULT_PINGONE_MAPPING }), {
      mapping: DEFAULT_PINGONE_MAPPING,
    });
    expect(parsed.commands.map((c) => c.eventId)).toEqual(ids);
  });

  it('passes an environment filter and a rule that needs a modified attribute', () => {
    const mapping: PingOneMapping = {
      'GROUP.DELETED': { target: 'group' },
      'USER.UPDATED': { target: 'user', modifiedAttributes: ['enabled'] },
    };
    const environmentIds = new Set(['env-1', 'env-2']);
    const parsed = parse(pingOneWarmUpBody(['x'], 'u', { mapping, environmentIds }), {
      mapping,
      environmentIds,
    });
    expect(parsed.commands).toHaveLength(1);
    expect(parsed.commands[0]).toMatchObject({ eventType: 'USER.UPDATED', target: { userId: 'u' } });
  });

  it('is undefined when the mapping revokes no user', () => {
    expect(
      pingOneWarmUpBody(['x'], 'u', { mapping: { 'GROUP.DELETED': { target: 'group' } } }),
    ).toBeUndefined();
  });
});
