import {
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  Body,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { AuditLog } from '#revocation';
import {
  AuditEntry,
  AuditQuery,
  FailedJob,
  QuarantineEntry,
  ReplayResult,
  Retried,
  CommandAccepted,
  CommandIdParam,
  CommandStatus,
  ErrorBody,
  GroupIdParam,
  HandleParam,
  JobIdParam,
  ListQuery,
  RevokeBody,
  RevokeDone,
  RevokeQuery,
  SessionSummary,
  StreamIdParam,
  UserIdParam,
} from './admin.dto.js';
import { AdminAuditInterceptor } from './admin-audit.interceptor.js';
import { AdminDeadlineInterceptor } from './admin-deadline.interceptor.js';
import { AdminGuard, type AdminRequest, RequireScope } from './admin.guard.js';
import { AdminService } from './admin.service.js';
import { ZodPipe } from './zod.pipe.js';

/** OpenAPI schema of a zod schema (OpenAPI 3.0 flavour of JSON Schema). */
const schema = (s: z.ZodType) =>
  z.toJSONSchema(s, { target: 'openapi-3.0', io: 'output' }) as Record<string, unknown>;
const errors = [400, 401, 403, 429, 503].map((status) => ApiResponse({ status, schema: schema(ErrorBody) }));
const Errors = (): MethodDecorator => (target, key, descriptor) => {
  for (const d of errors) d(target, key, descriptor);
};

@ApiTags('admin')
@ApiBearerAuth()
@Controller('admin')
@UseGuards(AdminGuard)
// The deadline outermost: it bounds the audit write too, which a stalled Redis would hold up.
@UseInterceptors(AdminDeadlineInterceptor, AdminAuditInterceptor)
export class AdminController {
  constructor(private readonly admin: AdminService) {}

  @Get('users/:userId/sessions')
  @RequireScope('sessions:read')
  @ApiOperation({ summary: "A user's live sessions (never a secret session id)" })
  @ApiResponse({ status: 200, schema: schema(z.array(SessionSummary)) })
  @Errors()
  listSessions(@Param('userId', new ZodPipe(UserIdParam)) userId: string) {
    return this.admin.listSessions(userId);
  }

  @Post('users/:userId/revoke')
  @HttpCode(202)
  @RequireScope('sessions:revoke')
  @ApiOperation({
    summary: "Revoke all of a user's sessions, ahead of webhook traffic; ?wait=true waits for it",
  })
  @ApiBody({ schema: schema(RevokeBody) })
  @ApiResponse({ status: 202, schema: schema(CommandAccepted) })
  @ApiResponse({ status: 200, description: 'with ?wait=true, once done', schema: schema(RevokeDone) })
  @ApiQuery({
    name: 'wait',
    required: false,
    enum: ['true', 'false'],
    description: 'wait (bounded) for the revocation',
  })
  @Errors()
  async revokeUser(
    @Param('userId', new ZodPipe(UserIdParam)) userId: string,
    @Body(new ZodPipe(RevokeBody, { json: true })) body: RevokeBody,
    @Query(new ZodPipe(RevokeQuery)) query: z.infer<typeof RevokeQuery>,
    @Req() request: AdminRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const id = await this.admin.revoke({ type: 'user', userId }, body.reason, request.admin!.name);
    if (query.wait !== 'true') return { commandId: id };
    const status = await this.admin.waitFor(id);
    if (!status || status.state !== 'done')
      return { commandId: id, ...(status ? { state: status.state } : {}) };
    void reply.status(200);
    return { commandId: id, revoked: (status.result as { revoked?: number } | undefined)?.revoked ?? 0 };
  }

  @Delete('users/:userId/sessions/:handle')
  @HttpCode(204)
  @RequireScope('sessions:revoke')
  @ApiOperation({ summary: 'Revoke one session by its handle' })
  @ApiResponse({ status: 204 })
  @ApiResponse({ status: 404, schema: schema(ErrorBody) })
  @Errors()
  async revokeSession(
    @Param('userId', new ZodPipe(UserIdParam)) userId: string,
    @Param('handle', new ZodPipe(HandleParam)) handle: string,
  ): Promise<void> {
    if (!(await this.admin.revokeHandle(userId, handle))) throw new NotFoundException('no such session');
  }

  @Post('groups/:groupId/revoke')
  @HttpCode(202)
  @RequireScope('sessions:revoke')
  @ApiOperation({ summary: 'Revoke every user holding a live session with the group' })
  @ApiBody({ schema: schema(RevokeBody) })
  @ApiResponse({ status: 202, schema: schema(CommandAccepted) })
  @Errors()
  async revokeGroup(
    @Param('groupId', new ZodPipe(GroupIdParam)) groupId: string,
    @Body(new ZodPipe(RevokeBody, { json: true })) body: RevokeBody,
    @Req() request: AdminRequest,
  ) {
    return {
      commandId: await this.admin.revoke({ type: 'group', groupId }, body.reason, request.admin!.name),
    };
  }

  @Get('commands/:commandId')
  @RequireScope('sessions:read')
  @ApiOperation({ summary: "A command's state (queued, active, done, failed), result and timings" })
  @ApiResponse({ status: 200, schema: schema(CommandStatus) })
  @ApiResponse({ status: 404, schema: schema(ErrorBody) })
  @Errors()
  async command(@Param('commandId', new ZodPipe(CommandIdParam)) id: string) {
    const status = await this.admin.status(id);
    if (!status) throw new NotFoundException('no such command');
    return status;
  }

  @Get('audit')
  @RequireScope('sessions:read')
  @ApiOperation({ summary: 'The audit trail, newest first' })
  @ApiQuery({ name: 'userId', required: false, schema: { type: 'string', maxLength: 256 } })
  @ApiQuery({
    name: 'limit',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
  })
  @ApiQuery({
    name: 'before',
    required: false,
    schema: { type: 'string', pattern: '^\\d{1,20}-\\d{1,20}$' },
    description: 'resume just older than this entry: the Audit-Next header of the previous answer',
  })
  @ApiResponse({
    status: 200,
    schema: schema(z.array(AuditEntry)),
    headers: {
      'Audit-Next': {
        description: `where to resume (pass as before): a read stops at limit entries, or for a user after examining ${AuditLog.SCAN_BUDGET} entries; absent at the oldest entry`,
        schema: { type: 'string' },
      },
    },
  })
  @Errors()
  async audit(
    @Query(new ZodPipe(AuditQuery)) query: z.infer<typeof AuditQuery>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    // Bounded whatever the stream holds: a read for a user examines at most SCAN_BUDGET entries.
    const { entries, next } = await this.admin.audit.page({
      limit: query.limit,
      ...(query.userId ? { userId: query.userId } : {}),
      ...(query.before ? { before: query.before } : {}),
    });
    if (next) void reply.header('Audit-Next', next);
    return entries;
  }

  @Get('quarantine')
  @RequireScope('queues:admin')
  @ApiOperation({ summary: 'Deliveries that could not be understood, newest first' })
  @ApiQuery({
    name: 'limit',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  })
  @ApiResponse({ status: 200, schema: schema(z.array(QuarantineEntry)) })
  @Errors()
  quarantine(@Query(new ZodPipe(ListQuery)) query: z.infer<typeof ListQuery>) {
    return this.admin.listQuarantine(query.limit);
  }

  @Post('quarantine/:id/replay')
  @HttpCode(200)
  @RequireScope('queues:admin')
  @ApiOperation({ summary: 'Parse a quarantined delivery again and queue what it yields (bypasses dedup)' })
  @ApiResponse({ status: 200, schema: schema(ReplayResult) })
  @ApiResponse({ status: 404, schema: schema(ErrorBody) })
  @Errors()
  replay(@Param('id', new ZodPipe(StreamIdParam)) id: string) {
    return this.admin.replayQuarantined(id);
  }

  @Get('failed')
  @RequireScope('queues:admin')
  @ApiOperation({ summary: 'Failed revocation jobs (kept for inspection and retry)' })
  @ApiQuery({
    name: 'limit',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  })
  @ApiResponse({ status: 200, schema: schema(z.array(FailedJob)) })
  @Errors()
  failed(@Query(new ZodPipe(ListQuery)) query: z.infer<typeof ListQuery>) {
    return this.admin.listFailed(query.limit);
  }

  @Post('failed/:id/retry')
  @HttpCode(202)
  @RequireScope('queues:admin')
  @ApiOperation({ summary: 'Retry a failed job' })
  @ApiResponse({ status: 202, schema: schema(Retried) })
  @ApiResponse({ status: 404, schema: schema(ErrorBody) })
  @Errors()
  async retry(@Param('id', new ZodPipe(JobIdParam)) id: string) {
    await this.admin.retryFailed(id);
    return { retried: id };
  }
}
