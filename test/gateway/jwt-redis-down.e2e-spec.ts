import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { closeWithoutRedis, startGateway, type TestGateway } from '../support/gateway.js';
import { createSigner, type TestSigner } from '../support/jwt.js';
import {
  BCL_AUD,
  BCL_ISS,
  CAEP,
  issuerEnv,
  logoutClaims,
  securityEventClaims,
  signLogoutToken,
  signSet,
  SSF_AUD,
  SSF_ISS,
} from '../support/jwt-issuers.js';
import { uniquePrefix } from '../support/redis.js';
import { type OwnRedis, quietQueues, startOwnRedis } from '../support/reliability-redis.js';

/**
 * Back-channel logout and SSF with the queue Redis gone: a valid token must get 503 with Retry-After
 * (the sender retries), never 200 (which would acknowledge a revocation that was not stored) and never
 * 400 (which tells the sender not to retry). The gateway's Redis is its own redis-server, killed after
 * a first delivery shows the same token would have been taken.
 */

const setOf = (userId: string) =>
  securityEventClaims({
    [`${CAEP}session-revoked`]: {
      subject: { format: 'iss_sub', iss: 'https://idp.example.com', sub: userId },
      event_timestamp: Math.floor(Date.now() / 1000),
    },
  });

describe('JWT receivers while the queue Redis is unreachable', () => {
  let server: OwnRedis;
  let gw: TestGateway;
  let signer: TestSigner;

  beforeAll(async () => {
    signer = await createSigner('redis-down-key', 'ES256');
    server = await startOwnRedis('jwt-down');
    gw = await startGateway({
      REDIS_URL: server.url,
      QUEUE_PREFIX: `{${uniquePrefix('jwt-down')}}`,
      ENQUEUE_TIMEOUT_MS: '500',
      ...issuerEnv('OIDC_BCL', signer, BCL_ISS, BCL_AUD),
      ...issuerEnv('SSF', signer, SSF_ISS, SSF_AUD),
    });
    // Connection errors are expected once Redis is killed.
    quietQueues(gw.app, [gw.redis, gw.queue]);
  });

  afterAll(async () => {
    if (gw) await closeWithoutRedis(gw);
    await server?.stop();
  });

  const logout = (token: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/oidc/backchannel-logout')
      .type('form')
      .send(`logout_token=${encodeURIComponent(token)}`);
  const ssf = (token: string) =>
    request(gw.app.getHttpServer())
      .post('/webhooks/ssf')
      .set('Content-Type', 'application/secevent+jwt')
      .send(token);

  it('answers 503 with Retry-After to valid tokens, and still 400 to invalid ones', async () => {
    // While Redis is up, tokens like these are taken.
    expect((await logout(await signLogoutToken(signer, logoutClaims()))).status).toBe(200);
    expect((await ssf(await signSet(signer, setOf('user-up')))).status).toBe(202);

    await server.kill();

    const bcl = await logout(await signLogoutToken(signer, logoutClaims({ sub: 'user-down' })));
    expect({
      status: bcl.status,
      retryAfter: bcl.headers['retry-after'],
      cacheControl: bcl.headers['cache-control'],
    }).toEqual({ status: 503, retryAfter: expect.stringMatching(/^\d+$/), cacheControl: 'no-store' });

    const set = await ssf(await signSet(signer, setOf('user-down')));
    expect({ status: set.status, retryAfter: set.headers['retry-after'] }).toEqual({
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
    });

    // A token refused on its own merits is still refused (400), Redis or not: retrying cannot help.
    const forged = await logout(await signLogoutToken(signer, logoutClaims({ aud: 'another-client' })));
    expect(forged.status).toBe(400);
  });
});
