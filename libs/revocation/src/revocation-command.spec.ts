import { describe, expect, it } from '@jest/globals';
import { RevocationCommand } from './revocation-command.js';

const command = (notBefore: number, receivedAt: number) => ({
  id: 'cmd-1',
  target: { type: 'user', userId: 'u-1' },
  source: 'pingone',
  eventType: 'USER.UPDATED',
  eventId: 'evt-1',
  notBefore,
  receivedAt,
});

describe('RevocationCommand', () => {
  const arrived = Date.parse('2026-11-28T01:00:00.000Z');

  it("keeps an event's own time when it is before its arrival", () => {
    expect(RevocationCommand.parse(command(arrived - 1500, arrived)).notBefore).toBe(arrived - 1500);
    expect(RevocationCommand.parse(command(arrived, arrived)).notBefore).toBe(arrived);
  });

  it('takes a future-dated event to have happened when it arrived, so no later login is refused', () => {
    const year2096 = Date.parse('2096-01-01T00:00:00.000Z');
    expect(RevocationCommand.parse(command(year2096, arrived))).toMatchObject({
      notBefore: arrived,
      receivedAt: arrived,
    });
    expect(RevocationCommand.parse(command(arrived + 1, arrived)).notBefore).toBe(arrived);
  });

  it('parses its own output to the same command (the worker parses what the gateway queued)', () => {
    const once = RevocationCommand.parse(command(arrived + 60_000, arrived));
    expect(RevocationCommand.parse(once)).toEqual(once);
  });
});
