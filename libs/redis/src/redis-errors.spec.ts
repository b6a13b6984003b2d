import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { logRedisErrors, REPEAT_ERROR_AFTER_MS } from './redis-errors.js';

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

  it('logs alternating errors once each, and one still going on again after a while', () => {
    const client = new EventEmitter();
    const { lines, logger } = recorder();
    let clock = 0;
    logRedisErrors(client, 'queue Redis', client, logger, () => clock);
    for (let i = 0; i < 4; i++) {
      client.emit('error', new Error('connect ECONNREFUSED'));
      client.emit('error', new Error('Connection is closed.'));
    }
    clock += REPEAT_ERROR_AFTER_MS;
    client.emit('error', new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      'warn queue Redis: connect ECONNREFUSED',
      'warn queue Redis: Connection is closed.',
      'warn queue Redis: connect ECONNREFUSED',
    ]);
  });

  it("logs a cluster node's errors, named by node", () => {
    const cluster = new EventEmitter();
    const { lines, logger } = recorder();
    logRedisErrors(cluster, 'session Redis', cluster, logger);
    cluster.emit('node error', new Error('connect ECONNREFUSED'), '10.0.0.2:7001');
    cluster.emit('node error', new Error('connect ECONNREFUSED'), '10.0.0.2:7001');
    cluster.emit('node error', new Error('connect ECONNREFUSED'), '10.0.0.3:7002');
    expect(lines).toEqual([
      'warn session Redis, node 10.0.0.2:7001: connect ECONNREFUSED',
      'warn session Redis, node 10.0.0.3:7002: connect ECONNREFUSED',
    ]);
  });

  it('keeps an error event from being unhandled (an emitter with no listener throws it)', () => {
    const client = new EventEmitter();
    expect(() => client.emit('error', new Error('boom'))).toThrow('boom');
    logRedisErrors(client, 'x', client, recorder().logger);
    expect(() => client.emit('error', new Error('boom'))).not.toThrow();
  });
});
