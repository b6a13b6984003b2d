import { isUtf8 } from 'node:buffer';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type JsonParseResult =
  { ok: true; value: unknown; text: string } | { ok: false; reason: string; text?: string };

/**
 * Bytes to JSON, refusing invalid UTF-8 and dropping keys that could pollute prototypes when the
 * value is later spread or merged. Never throws: the reason says what was wrong.
 */
export function parseJsonBytes(body: Buffer | string | undefined): JsonParseResult {
  const bytes = body ?? Buffer.alloc(0);
  if (typeof bytes !== 'string' && !isUtf8(bytes)) return { ok: false, reason: 'body is not valid UTF-8' };
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  if (text.trim() === '') return { ok: false, reason: 'body is empty', text };
  try {
    // The reviver costs more than the parse itself: only run it when a forbidden key could be there
    // (its name, or a \u escape that could spell it).
    const suspicious = /__proto__|constructor|prototype|\\u/.test(text);
    const value: unknown = suspicious
      ? JSON.parse(text, (key, v: unknown) => (FORBIDDEN_KEYS.has(key) ? undefined : v))
      : JSON.parse(text);
    return { ok: true, value, text };
  } catch (err) {
    return {
      ok: false,
      reason: err instanceof RangeError ? 'body is nested too deeply' : 'body is not valid JSON',
      text,
    };
  }
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
