import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { RevocationCommand } from '#revocation';
import { DEFAULT_PINGONE_MAPPING } from './pingone-mapping.js';
import { parsePingOneBody } from './pingone.parser.js';

const RECEIVED_AT = Date.parse('2026-01-02T03:04:05.678Z');
const options = { mapping: DEFAULT_PINGONE_MAPPING, receivedAt: RECEIVED_AT };

/** A PingOne event of `type` naming the given user, session or group (any of them may be missing). */
const event = (f: {
  id: string;
  type: string;
  recordedAt: string;
  userId?: string;
  sessionId?: string;
  groupId?: string;
}) => ({
  id: f.id,
  recordedAt: f.recordedAt,
  action: { type: f.type },
  result: { status: 'SUCCESS' },
  resources: [
    ...(f.userId !== undefined ? [{ type: 'USER', id: f.userId }] : []),
    ...(f.sessionId !== undefined ? [{ type: 'SESSION', id: f.sessionId }] : []),
    ...(f.groupId !== undefined ? [{ type: 'GROUP', id: f.groupId }] : []),
  ],
});

const parse = (events: unknown[]) => parsePingOneBody(Buffer.from(JSON.stringify(events)), options);

describe('parsePingOneBody', () => {
  // Ids around the schema's bounds (256 for targets, 512 for event ids), and times around receivedAt.
  const id = fc.oneof(
    fc.string({ minLength: 1, maxLength: 8 }),
    fc.integer({ min: 250, max: 262 }).map((n) => 'u'.repeat(n)),
  );
  const eventId = fc.oneof(
    fc.string({ minLength: 1, maxLength: 8 }),
    fc.integer({ min: 505, max: 520 }).map((n) => 'e'.repeat(n)),
  );
  const recordedAt = fc
    .integer({ min: -5_000_000, max: 5_000_000 })
    .map((d) => new Date(RECEIVED_AT + d).toISOString());
  const type = fc.constantFrom('USER.DELETED', 'SESSION.DELETED', 'GROUP.DELETED', 'MEMBER_OF_GROUP.CREATED');
  const anEvent = fc.record(
    { id: eventId, type, recordedAt, userId: id, sessionId: id, groupId: id },
    { requiredKeys: ['id', 'type', 'recordedAt'] },
  );

  it('makes exactly the commands the schema makes of what it maps, and quarantines the rest', () => {
    fc.assert(
      fc.property(fc.array(anEvent, { minLength: 1, maxLength: 5 }), (events) => {
        const result = parse(events.map(event));
        for (const c of result.commands) expect(RevocationCommand.parse(c)).toEqual(c);
        expect(result.commands.length + result.quarantinedEvents).toBe(events.length);
        for (const c of result.commands) expect(c.notBefore).toBeLessThanOrEqual(RECEIVED_AT);
      }),
      { numRuns: 300 },
    );
  });

  it("gives the schema's reason for an id over its bounds", () => {
    const result = parse([
      event({
        id: 'e-long',
        type: 'USER.DELETED',
        recordedAt: '2026-01-01T00:00:00Z',
        userId: 'u'.repeat(257),
      }),
    ]);
    expect(result.commands).toEqual([]);
    expect(result.quarantined).toEqual([
      expect.objectContaining({
        eventId: 'e-long',
        reason: expect.stringMatching(/^event does not make a valid command: /),
      }),
    ]);
  });

  it('takes an event as it arrived at the latest, and keeps every field of the command', () => {
    const later = new Date(RECEIVED_AT + 60_000).toISOString();
    const [c] = parse([
      event({ id: 'e-1', type: 'SESSION.DELETED', recordedAt: later, sessionId: 's-1', userId: 'u-1' }),
    ]).commands;
    expect(c).toEqual({
      id: expect.stringMatching(/^pingone-[A-Za-z0-9_-]{27}$/),
      target: { type: 'idp_session', idpSessionId: 's-1', userId: 'u-1' },
      source: 'pingone',
      eventType: 'SESSION.DELETED',
      eventId: 'e-1',
      notBefore: RECEIVED_AT,
      receivedAt: RECEIVED_AT,
    });
  });
});
