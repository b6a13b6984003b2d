import { createHash } from 'node:crypto';
import type { CommandSource } from './revocation-command.js';

/**
 * The command (and job) id for the n-th command of a source event: deterministic, so a redelivered
 * event maps to the same id; hashed, so any event id fits BullMQ's job-id rules (no ':').
 */
export function commandId(source: CommandSource, eventId: string, n = 0): string {
  const hash = createHash('sha256').update(`${source}\n${eventId}`).digest('base64url').slice(0, 27);
  return n === 0 ? `${source}-${hash}` : `${source}-${hash}-${n}`;
}
