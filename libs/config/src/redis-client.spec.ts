import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { logRedisErrors } from './redis-client.js';

/** Collects what would be logged. */
function recorder() {
  const lines: string[] = [];
  return {
    lines,
    logger: {
      warn: (m: string) => void lines.push(`warn ${m}`),
      log: (m: string) => void lines.push(`log ${m}`),
    },
  };
}

describe('logRedisErrors', () => {
  it('logs the first error of an outage and any different one, then the recovery, once each', () => {
    const client = new EventEmitter();
    const { lines, logger } = recorder();
    logRedisErrors(client, 'queue Redis', client, logger);
    for (let i = 0; i < 5; i++) client.emit('error', new Error('connect ECONNREFUSED'));
    client.emit('error', new Error('LOADING Redis is loading'));
    client.emit('ready');
    client.emit('ready');
    client.emit('error', new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      'warn queue Redis: connect ECONNREFUSED',
      'warn queue Redis: LOADING Redis is loading',
      'log queue Redis: connected again',
      'warn queue Redis: connect ECONNREFUSED',
    ]);
  });

  it("ends a queue's outage on its client's 'ready', leaving that line to the client", () => {
    const client = new EventEmitter();
    const queue = new EventEmitter();
    const { lines, logger } = recorder();
    logRedisErrors(queue, 'queue revocations', client, logger);
    queue.emit('error', new Error('connect ECONNREFUSED'));
    queue.emit('error', new Error('connect ECONNREFUSED'));
    client.emit('ready');
    queue.emit('error', new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      'warn queue revocations: connect ECONNREFUSED',
      'warn queue revocations: connect ECONNREFUSED',
    ]);
  });

  it('keeps an error event from being unhandled (an emitter with no listener throws it)', () => {
    const client = new EventEmitter();
    expect(() => client.emit('error', new Error('boom'))).toThrow('boom');
    logRedisErrors(client, 'x', client, recorder().logger);
    expect(() => client.emit('error', new Error('boom'))).not.toThrow();
  });
});
