import { z } from 'zod';
import { isStreamId } from '#redis';

/** Request and response shapes of the admin API: validated by ZodPipe, documented in OpenAPI. */
export const UserIdParam = z.string().min(1).max(256);
export const GroupIdParam = z.string().min(1).max(256);
export const HandleParam = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22}$/, 'a session handle is 22 base64url characters');
export const CommandIdParam = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'not a command id');
export const StreamIdParam = z.string().regex(/^\d{1,20}-\d{1,20}$/, 'not an entry id');
export const JobIdParam = z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, 'not a job id');

export const RevokeBody = z
  .object({ reason: z.string().min(1).max(512).describe('Why: kept in the audit trail') })
  .strict();
export type RevokeBody = z.infer<typeof RevokeBody>;

export const RevokeQuery = z.object({ wait: z.enum(['true', 'false']).optional() }).passthrough();

/** A stream id Redis takes: `ms-seq`, each part an unsigned 64-bit integer. */
export const AuditCursor = z.string().refine(isStreamId, 'not an entry id');

export const AuditQuery = z
  .object({
    userId: z.string().min(1).max(256).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    /** Resume just older than this entry: the Audit-Next header of the previous answer. */
    before: AuditCursor.optional(),
  })
  .passthrough();

export const ListQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(1000).default(100) })
  .passthrough();

export const SessionSummary = z.object({
  handle: z.string(),
  issuedAt: z.number().int(),
  expiresAt: z.number().int(),
  idpSessionId: z.string().optional(),
  groups: z.array(z.string()),
});

export const CommandAccepted = z.object({ commandId: z.string() });
export const RevokeDone = z.object({ commandId: z.string(), revoked: z.number().int() });

export const CommandStatus = z.object({
  commandId: z.string(),
  state: z.enum(['queued', 'active', 'done', 'failed']),
  result: z.unknown().optional(),
  failedReason: z.string().optional(),
  attempts: z.number().int(),
  timings: z.object({
    queuedAt: z.number().int().optional(),
    startedAt: z.number().int().optional(),
    finishedAt: z.number().int().optional(),
  }),
});
export type CommandStatus = z.infer<typeof CommandStatus>;

export const ErrorBody = z.object({
  statusCode: z.number(),
  error: z.string().optional(),
  message: z.unknown(),
});

export const AuditEntry = z.object({
  id: z.string(),
  source: z.string(),
  eventType: z.string(),
  commandId: z.string().optional(),
  eventId: z.string().optional(),
  target: z.record(z.string(), z.unknown()).optional(),
  revoked: z.number().int().optional(),
  result: z.union([z.string(), z.number()]),
  receivedAt: z.number().int(),
  doneAt: z.number().int(),
  actor: z.string().optional(),
  reason: z.string().optional(),
});

export const QuarantineEntry = z.object({
  id: z.string(),
  source: z.string(),
  reason: z.string(),
  raw: z.string(),
  receivedAt: z.number().int(),
  eventId: z.string().optional(),
  /** How many events the entry holds: a delivery's undecodable events are kept as one entry. */
  events: z.number().int(),
});

export const ReplayResult = z.object({
  enqueued: z.number().int(),
  ignored: z.number().int(),
  quarantined: z.number().int(),
});

export const FailedJob = z.object({
  id: z.string(),
  queue: z.string(),
  command: z.unknown(),
  failedReason: z.string().optional(),
  attempts: z.number().int(),
  failedAt: z.number().int().optional(),
});

export const Retried = z.object({ retried: z.string() });
