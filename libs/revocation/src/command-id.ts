import { hash } from 'node:crypto';
import { COMMAND_SOURCES, type CommandSource } from './revocation-command.js';

/**
 * The command (and job) id for the n-th command of a source event: deterministic, so a redelivered
 * event maps to the same id; hashed, so any event id fits BullMQ's job-id rules (no ':').
 */
export function commandId(source: CommandSource, eventId: string, n = 0): string {
  // One-shot: no Hash object per id (a delivery hashes once per event).
  const digest = hash('sha256', `${source}\n${eventId}`, 'base64url').slice(0, 27);
  return n === 0 ? `${source}-${digest}` : `${source}-${digest}-${n}`;
}

/**
 * A command id as this service issues them: `commandId`'s, optionally followed by a replay's `-r<time>`
 * (RevocationProducer) and a group fan-out batch's `-b<hash>` (the worker's). Anything else, such as
 * the names of BullMQ's own keys in the queue (`meta`, `events`, `id`, ...), is no command of ours.
 */
const ISSUED = new RegExp(
  `^(?:${COMMAND_SOURCES.join('|')})-[A-Za-z0-9_-]{27}(?:-(?:\\d{1,6}|r[0-9a-z]{1,12}|[bu][A-Za-z0-9_-]{22}))*$`,
);

/** Whether `id` has the shape of a command id this service issued (it may still not exist). */
export const isIssuedCommandId = (id: string): boolean => id.length <= 200 && ISSUED.test(id);
