import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { freePorts, uniquePrefix } from '../support/redis.js';
import { QueueKeys } from '#revocation';

const SECRET = 'metrics-webhook-secret-value';

describe('health and metrics', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('ops')}}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      SESSION_TAG_SECRET: 'ops-tag-secret-0123456789',
    });
  });
  afterAll(() => gw.close());

  it('answers liveness and readiness with both Redis roles and the queues', async () => {
    const server = gw.app.getHttpServer();
    await request(server).get('/health/live').expect(200, { status: 'ok' });
    const ready = await request(server).get('/health/ready').expect(200);
    expect(Object.keys(ready.body.info)).toEqual(
      expect.arrayContaining(['redis_sessions', 'redis_queue', 'queues', 'memory']),
    );
  });

  it('reports degraded readiness when the memory watch says a Redis is near its limit', async () => {
    await gw.redis.set(
      new QueueKeys(gw.config.redis.queuePrefix).memory,
      JSON.stringify([{ role: 'sessions', usedMemory: 95, maxmemory: 100, degraded: true }]),
      'PX',
      60_000,
    );
    const ready = await request(gw.app.getHttpServer()).get('/health/ready');
    expect(JSON.stringify(ready.body)).toContain('degraded');
    await gw.redis.del(new QueueKeys(gw.config.redis.queuePrefix).memory);
  });

  it('exports Prometheus metrics with conventional names and no secrets', async () => {
    const server = gw.app.getHttpServer();
    await request(server)
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${SECRET}`)
      .set('Content-Type', 'application/json')
      .send(
        '[{"id":"m1","recordedAt":"2026-11-20T10:00:00Z","action":{"type":"USER.DELETED"},"resources":[{"type":"USER","id":"u-metrics"}],"result":{"status":"SUCCESS"}}]',
      )
      .expect(200);
    const text = (await request(server).get('/metrics').expect(200)).text;
    for (const name of [
      'session_revoker_events_received_total',
      'session_revoker_http_request_duration_seconds_bucket',
      'session_revoker_queue_jobs',
      'session_revoker_quarantine_entries',
    ])
      expect(text).toContain(name);
    expect(text).toMatch(
      /session_revoker_events_received_total\{source="pingone",type="USER.DELETED",outcome="enqueued"\} 1/,
    );
    expect(text).toMatch(/session_revoker_queue_jobs\{queue="revocations",state="waiting"\} 1/);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('u-metrics');
  });
});

describe('readiness without the queue Redis', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const [port] = await freePorts(1);
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('ops-down')}}`,
      QUEUE_REDIS_URL: `redis://127.0.0.1:${port}`,
    });
  }, 20_000);
  afterAll(() => gw.close());

  it('is live but not ready', async () => {
    const server = gw.app.getHttpServer();
    await request(server).get('/health/live').expect(200);
    const ready = await request(server).get('/health/ready').expect(503);
    expect(ready.body.error).toHaveProperty('redis_queue');
  });
});
