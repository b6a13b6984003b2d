import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { commandId, isIssuedCommandId } from '#revocation';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { uniquePrefix } from '../support/redis.js';
import { userEvent } from '../support/reliability-http.js';

/**
 * Findings 5, 6, 7 and 10 of the black-box attack: metric labels a sender can invent, ids that name
 * BullMQ's own keys or no stream entry at all, and one shared rate-limit bucket behind a proxy.
 */
const SECRET = 'hardening-inputs-secret-0123456789';
const KEY = 'hardening-inputs-admin-key-0123456789';
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('hardening: what a sender or a caller can name', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('harden-in')}}`,
      SESSION_PREFIX: uniquePrefix('harden-in-s'),
      PINGONE_WEBHOOK_SECRET: SECRET,
      ADMIN_API_KEY: KEY,
      ADMIN_RATE_LIMIT_PER_MINUTE: '100000',
      ADMIN_AUTH_FAILURES_PER_MINUTE: '100000',
    });
    // A delivery, so the queue has its BullMQ keys (meta, events, id, ...).
    await request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set({ ...bearer(SECRET), 'Content-Type': 'application/json' })
      .send(JSON.stringify([userEvent('hardening-inputs-e1', 'u-1', Date.now())]))
      .expect(200);
  });
  afterAll(() => gw?.close());

  it('labels only known event types in /metrics, counting made-up ones as other (finding 5)', async () => {
    const server = gw.app.getHttpServer();
    const invented = Array.from({ length: 40 }, (_, i) => `INVENTED.${i}.${'x'.repeat(200)}`);
    const events = invented.map((type, i) => userEvent(`hardening-inputs-t${i}`, `u-${i}`, Date.now(), type));
    const res = await request(server)
      .post('/webhooks/pingone')
      .set({ ...bearer(SECRET), 'Content-Type': 'application/json' })
      .send(JSON.stringify(events))
      .expect(200);
    expect(res.body).toMatchObject({ received: 40, ignored: 40 });
    const metrics = (await request(server).get('/metrics').expect(200)).text;
    expect(metrics).not.toContain('INVENTED.');
    expect(metrics).toMatch(
      /session_revoker_events_received_total\{source="pingone",type="other",outcome="ignored"\} 40/,
    );
    // A known type keeps its own label.
    expect(metrics).toMatch(
      /session_revoker_events_received_total\{source="pingone",type="USER.DELETED",outcome="enqueued"\} 1/,
    );
  });

  it.each(['meta', 'events', 'id', 'completed', 'stalled-check', 'wait', 'failed', 'prioritized'])(
    'answers 404, never 200 or 500, for a command or failed job named after BullMQ’s key %j (finding 6)',
    async (name) => {
      const server = gw.app.getHttpServer();
      const status = await request(server).get(`/admin/commands/${name}`).set(bearer(KEY));
      expect({ status: status.status, message: status.body.message }).toEqual({
        status: 404,
        message: 'no such command',
      });
      const retry = await request(server).post(`/admin/failed/${name}/retry`).set(bearer(KEY));
      expect(retry.status).toBe(404);
    },
  );

  it('still finds a command by the id it was given (finding 6)', async () => {
    const id = commandId('pingone', 'hardening-inputs-e1');
    const res = await request(gw.app.getHttpServer()).get(`/admin/commands/${id}`).set(bearer(KEY));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ commandId: id });
  });

  it('knows the shapes of the ids it issues, and nothing else', () => {
    const base = commandId('admin', 'e');
    for (const id of [base, commandId('ssf', 'e', 2), `${base}-rmf3k2a1`, `${base}-u${'A'.repeat(22)}`])
      expect(isIssuedCommandId(id)).toBe(true);
    for (const id of [
      'meta',
      'events',
      'id',
      'stalled-check',
      'pingone',
      `${base}x`,
      `${base}:1`,
      `nope-${'a'.repeat(27)}`,
    ])
      expect(isIssuedCommandId(id)).toBe(false);
  });

  it.each([
    '99999999999999999999-99999999999999999999',
    '18446744073709551616-0',
    '0-18446744073709551616',
    '18446744073709551615-18446744073709551615',
  ])(
    'answers 404, never 500, to a quarantine replay of the out-of-range or absent id %s (finding 7)',
    async (id) => {
      const res = await request(gw.app.getHttpServer())
        .post(`/admin/quarantine/${id}/replay`)
        .set(bearer(KEY));
      expect({ status: res.status, message: res.body.message }).toEqual({
        status: 404,
        message: 'no such quarantine entry',
      });
    },
  );
});

describe('hardening: rate limits behind a reverse proxy (finding 10)', () => {
  const failed = async (gw: TestGateway, forwardedFor: string) =>
    (await request(gw.app.getHttpServer()).get('/admin/audit').set('X-Forwarded-For', forwardedFor)).status;
  const operator = async (gw: TestGateway, forwardedFor: string) =>
    (
      await request(gw.app.getHttpServer())
        .get('/admin/audit')
        .set({ ...bearer(KEY), 'X-Forwarded-For': forwardedFor })
    ).status;

  describe('with TRUSTED_PROXIES', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({
        QUEUE_PREFIX: `{${uniquePrefix('harden-px')}}`,
        ADMIN_API_KEY: KEY,
        ADMIN_RATE_LIMIT_PER_MINUTE: '100',
        ADMIN_AUTH_FAILURES_PER_MINUTE: '5',
        TRUSTED_PROXIES: '127.0.0.1,::1',
      });
    });
    afterAll(() => gw?.close());

    it('gives each forwarded client its own budget, and an anonymous client locks out only itself', async () => {
      const attacker: number[] = [];
      for (let i = 0; i < 20; i++) attacker.push(await failed(gw, '203.0.113.9'));
      expect(attacker).toEqual([...Array(5).fill(401), ...Array(15).fill(429)]);
      // Another client behind the same proxy is not refused for the attacker's failures.
      expect(await failed(gw, '198.51.100.8')).toBe(401);
      // Nor are the operators, wherever they are.
      expect(await operator(gw, '198.51.100.7')).toBe(200);
      expect(await operator(gw, '203.0.113.9')).toBe(200);
    });
  });

  describe('without TRUSTED_PROXIES', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({
        QUEUE_PREFIX: `{${uniquePrefix('harden-np')}}`,
        ADMIN_API_KEY: KEY,
        ADMIN_RATE_LIMIT_PER_MINUTE: '100',
        ADMIN_AUTH_FAILURES_PER_MINUTE: '5',
      });
    });
    afterAll(() => gw?.close());

    it('ignores X-Forwarded-For (no fresh budget per made-up address), and the operators still get in', async () => {
      const attacker: number[] = [];
      for (let i = 0; i < 10; i++) attacker.push(await failed(gw, `203.0.113.${i}`));
      expect(attacker).toEqual([...Array(5).fill(401), ...Array(5).fill(429)]);
      // Failed authentications are counted apart: the same address with a valid key is served.
      expect(await operator(gw, '203.0.113.0')).toBe(200);
    });
  });
});
