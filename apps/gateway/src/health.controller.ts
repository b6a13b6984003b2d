import { Controller, Get } from '@nestjs/common';

@Controller('health')
export class HealthController {
  /** Liveness: the process answers HTTP. Readiness (Redis, queues) arrives with the worker and gateway issues. */
  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
