import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { uniquePrefix } from '../support/redis.js';

describe('smoke', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('smoke')}}`,
      PINGONE_WEBHOOK_SECRET: 's3cret-value',
    });
  });
  afterAll(() => gw.close());
  it('accepts the fixture batch', async () => {
    const body = readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8');
    const res = await request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', 'Bearer s3cret-value')
      .set('Content-Type', 'application/json')
      .send(body);
    expect(res.body).toEqual({ received: 5, enqueued: 3, duplicates: 0, ignored: 2, quarantined: 0 });
    expect(await gw.commands()).toHaveLength(3);
  });
});
