import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { loadConfig } from '#config';
import { bootGateway, logLines } from '../support/gateway.js';
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const SECRET = 'logging-webhook-secret-value';
const ADMIN_KEY = 'logging-admin-key-0123456789';

describe('logs', () => {
  const { lines, stream: sink } = logLines();
  let app: NestFastifyApplication;
  const prefix = uniquePrefix('log');

  beforeAll(async () => {
    const config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'info',
      QUEUE_PREFIX: `{${prefix}}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      ADMIN_API_KEY: ADMIN_KEY,
    });
    app = await bootGateway(config, { logs: sink });
  });
  afterAll(async () => {
    await app.close();
    const redis = testRedis();
    await deletePrefix(redis, `{${prefix}}`);
    redis.disconnect();
  });

  it('are JSON with a request id, and carry no credential, token or session id', async () => {
    const server = app.getHttpServer();
    const sessionId = 'AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
    const res = await request(server)
      .post('/webhooks/pingone?token=query-token-value')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Cookie', `sid=${sessionId}`)
      .set('x-request-id', 'req-12345')
      .set('Content-Type', 'application/json')
      .send('{"not": "an event", "token": "body-token-value"}');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('req-12345');
    await request(server).get('/admin/audit').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
    await request(server)
      .post('/webhooks/oidc/backchannel-logout')
      .type('form')
      .send('logout_token=eyJhbGciOiJub25lIn0.e30.');

    expect(lines.length).toBeGreaterThan(0);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    // One line per request, when it is answered: method, path (no query), status and duration.
    const mine = parsed.filter((l) => l['reqId'] === 'req-12345');
    expect(mine).toEqual([
      expect.objectContaining({
        msg: 'request completed',
        req: { method: 'POST', path: '/webhooks/pingone' },
        res: { statusCode: 200 },
        responseTime: expect.any(Number),
      }),
    ]);
    const all = lines.join('\n');
    for (const secret of [
      SECRET,
      ADMIN_KEY,
      sessionId,
      'query-token-value',
      'body-token-value',
      'eyJhbGciOiJub25lIn0',
    ])
      expect(all).not.toContain(secret);
  });
});
