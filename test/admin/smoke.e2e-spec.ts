import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { uniquePrefix } from '../support/redis.js';

const KEY = 'admin-key-0123456789abcdef';

describe('admin smoke', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('adm')}}`,
      SESSION_PREFIX: uniquePrefix('adm-s'),
      SESSION_TAG_SECRET: 'admin-smoke-tag-secret-0123',
      ADMIN_API_KEY: KEY,
    });
  });
  afterAll(() => gw.close());

  it('serves the API, docs and dashboard behind credentials', async () => {
    const server = gw.app.getHttpServer();
    await request(server).get('/admin/users/u1/sessions').expect(401);
    await request(server)
      .get('/admin/users/u1/sessions')
      .set('Authorization', `Bearer ${KEY}`)
      .expect(200, []);
    const revoke = await request(server)
      .post('/admin/users/u1/revoke')
      .set('Authorization', `Bearer ${KEY}`)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ reason: 'test' }));
    expect(revoke.status).toBe(202);
    const status = await request(server)
      .get(`/admin/commands/${revoke.body.commandId}`)
      .set('Authorization', `Bearer ${KEY}`);
    expect(status.body.state).toBe('queued');
    const doc = await request(server).get('/docs/openapi.json').expect(200);
    expect(Object.keys(doc.body.paths)).toContain('/admin/users/{userId}/revoke');
    await request(server).get('/admin/queues').expect(401);
    const board = await request(server).get('/admin/queues').auth('anyone', KEY);
    expect(board.status).toBe(200);
    const audit = await request(server)
      .get('/admin/audit?limit=5')
      .set('Authorization', `Bearer ${KEY}`)
      .expect(200);
    expect(audit.body[0]).toMatchObject({ source: 'admin', actor: 'admin' });
  });
});
