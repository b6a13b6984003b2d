import { InvalidArgumentError } from './errors.js';

export const MAX_ID_LENGTH = 256;
export const MAX_GROUPS = 256;
export const MAX_CLAIMS_BYTES = 16 * 1024;
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** An id (user, group, IdP session): a non-empty string of at most 256 characters. */
export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new InvalidArgumentError(`${what} must be a non-empty string`);
  if (value.length > MAX_ID_LENGTH)
    throw new InvalidArgumentError(`${what} must be at most ${MAX_ID_LENGTH} characters`);
  return value;
}

export function checkTtlSeconds(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw new InvalidArgumentError('ttlSeconds must be a positive whole number');
  return value;
}

/** An instant in epoch milliseconds. */
export function checkInstant(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new InvalidArgumentError(`${what} must be an instant in epoch milliseconds`);
  return Math.floor(value);
}

export function checkGroups(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError('groups must be an array of group ids');
  if (value.length > MAX_GROUPS) throw new InvalidArgumentError(`groups must hold at most ${MAX_GROUPS} ids`);
  return [...new Set(value.map((g) => checkId(g, 'each group id')))];
}

/** Claims: a plain JSON object, small (they live in every session record). Returns its JSON or ''. */
export function checkClaims(value: unknown): string {
  if (value === undefined) return '';
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidArgumentError('claims must be a plain object');
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    throw new InvalidArgumentError('claims must be serialisable as JSON');
  }
  if (Buffer.byteLength(json) > MAX_CLAIMS_BYTES)
    throw new InvalidArgumentError(`claims must be at most ${MAX_CLAIMS_BYTES} bytes as JSON`);
  return json;
}

export function checkToken(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new InvalidArgumentError('token must be a non-empty string');
  if (value.length > MAX_TOKEN_LENGTH)
    throw new InvalidArgumentError(`token must be at most ${MAX_TOKEN_LENGTH} characters`);
  return value;
}

const SESSION_ID = /^([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/;
const HANDLE = /^[A-Za-z0-9_-]{22}$/;

/** Splits a session id into its routing tag; the message never repeats the value. */
export function parseSessionId(value: unknown): { tag: string; sessionId: string } {
  const m = typeof value === 'string' ? SESSION_ID.exec(value) : null;
  if (!m) throw new InvalidArgumentError('session id has an unknown format');
  return { tag: m[1]!, sessionId: value as string };
}

export function checkHandle(value: unknown): string {
  if (typeof value !== 'string' || !HANDLE.test(value))
    throw new InvalidArgumentError('handle has an unknown format');
  return value;
}
