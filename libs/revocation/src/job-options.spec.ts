import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '#config';
import { producerOptions } from './job-options.js';

describe('producerOptions', () => {
  it('takes the one-script enqueue from ENQUEUE_ONE_SCRIPT, for every producer made from config', () => {
    expect(producerOptions(loadConfig({})).fused).toBe(true);
    expect(producerOptions(loadConfig({ ENQUEUE_ONE_SCRIPT: 'false' })).fused).toBe(false);
  });
});
