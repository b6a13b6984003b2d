import { z } from 'zod';

/** What a command revokes. Ids are bounded like the session store's, so a command never fails there. */
const id = z.string().min(1).max(256);

/** Members per job of a group's fan-out. */
export const FAN_OUT_BATCH = 500;

export const RevocationTarget = z.discriminatedUnion('type', [
  z.object({ type: z.literal('user'), userId: id }),
  z.object({ type: z.literal('idp_session'), idpSessionId: id, userId: id.optional() }),
  z.object({ type: z.literal('group'), groupId: id }),
  z.object({ type: z.literal('session'), userId: id, handle: z.string().regex(/^[A-Za-z0-9_-]{22}$/) }),
  /** A batch of a group's members (the worker's fan-out makes these; no source sends them). */
  z.object({ type: z.literal('users'), userIds: z.array(id).min(1).max(FAN_OUT_BATCH) }),
]);
export type RevocationTarget = z.infer<typeof RevocationTarget>;

export const COMMAND_SOURCES = ['pingone', 'oidc_bcl', 'ssf', 'admin'] as const;
export const CommandSource = z.enum(COMMAND_SOURCES);
export type CommandSource = z.infer<typeof CommandSource>;

/**
 * The one shape every source is normalised into. Everything after the gateway knows only this.
 * It never carries a secret: no session id, no token, no raw payload.
 */
export const RevocationCommand = z
  .object({
    /** Deterministic: derived from the source and its event id, so a redelivery maps to the same command. */
    id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
    target: RevocationTarget,
    source: CommandSource,
    eventType: z.string().min(1).max(256),
    eventId: z.string().min(1).max(512),
    /** The instant the revocation takes effect (the event's own time, at the latest its arrival), epoch ms. */
    notBefore: z.number().int().nonnegative(),
    /** When the gateway received it, epoch ms. */
    receivedAt: z.number().int().nonnegative(),
    reason: z.string().max(512).optional(),
    /** Who asked, for admin commands (an API key name or a token subject). */
    actor: z.string().max(256).optional(),
    /** A group member's revocation: the id of the group command it was fanned out from (audited there). */
    fanOutOf: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,128}$/)
      .optional(),
  })
  // An event cannot take effect after it arrived. A sender's clock ahead of ours (or a wrong date)
  // must not put the user's not-before stamp in the future: stamps only move forward, so every login
  // until that date would be refused.
  .transform((c) => (c.notBefore > c.receivedAt ? { ...c, notBefore: c.receivedAt } : c));
export type RevocationCommand = z.infer<typeof RevocationCommand>;
