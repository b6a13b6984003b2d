import { BadRequestException, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { parseJsonBytes } from '#identity-events';

/**
 * Validates a request part with a zod schema (400 with the issues, never a 500). Bodies arrive as
 * bytes (see gateway.app.ts): with `json` they are decoded and parsed first; an empty body is `{}`.
 */
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    private readonly schema: S,
    private readonly options: { json?: boolean } = {},
  ) {}

  transform(value: unknown): z.infer<S> {
    let input = value;
    if (this.options.json) {
      if (value === undefined || (Buffer.isBuffer(value) && value.length === 0)) input = {};
      else {
        const parsed = parseJsonBytes(Buffer.isBuffer(value) ? value : undefined);
        if (!parsed.ok)
          throw new BadRequestException({ statusCode: 400, error: 'Bad Request', message: parsed.reason });
        input = parsed.value;
      }
    }
    const result = this.schema.safeParse(input);
    if (!result.success)
      throw new BadRequestException({
        statusCode: 400,
        error: 'Bad Request',
        message: result.error.issues.map((i) => `${i.path.join('.') || '(value)'}: ${i.message}`).join('; '),
      });
    return result.data;
  }
}
