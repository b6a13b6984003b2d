import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { ALL_QUEUES } from '#revocation';
import { startGateway, type TestGateway } from '../support/gateway.js';
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
import { freePorts, type RedisProcess, startRedisServer, uniquePrefix } from '../support/redis.js';

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
  let dir: string;
  let server: RedisProcess;
  let gw: TestGateway;
  let signer: TestSigner;

  beforeAll(async () => {
    signer = await createSigner('redis-down-key', 'ES256');
    dir = mkdtempSync(join(tmpdir(), 'sr-jwt-down-'));
    const [port] = (await freePorts(1)) as [number];
    server = await startRedisServer(port, dir);
    gw = await startGateway({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      QUEUE_PREFIX: `{${uniquePrefix('jwt-down')}}`,
      ENQUEUE_TIMEOUT_MS: '500',
      ...issuerEnv('OIDC_BCL', signer, BCL_ISS, BCL_AUD),
      ...issuerEnv('SSF', signer, SSF_ISS, SSF_AUD),
    });
    // Connection errors are expected once Redis is killed.
    const noop = () => undefined;
    gw.redis.on('error', noop);
    gw.queue.on('error', noop);
    for (const name of ALL_QUEUES) gw.app.get<Queue>(getQueueToken(name)).on('error', noop);
  });

  afterAll(async () => {
    await gw.app.close();
    await gw.queue.close().catch(() => undefined);
    gw.redis.disconnect();
    if (server.process.exitCode === null && server.process.signalCode === null)
      server.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
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

    const exited = new Promise((resolve) => server.process.once('exit', resolve));
    server.process.kill('SIGKILL');
    await exited;

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
