import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { freePorts, waitFor } from './redis.js';

/** The built entry points: `npm run build` makes them. */
export const GATEWAY_MAIN = resolve('dist/apps/gateway/src/main.js');
export const WORKER_MAIN = resolve('dist/apps/worker/src/main.js');

export interface ServiceProcess {
  role: 'gateway' | 'worker';
  /** The HTTP port: PORT of a gateway, WORKER_PORT (health and metrics) of a worker. */
  port: number;
  url: string;
  process: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr, interleaved). */
  output(): string;
  /** Null while it runs. */
  exitCode(): number | null | 'signal';
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the built gateway (EMBEDDED_WORKER=false) or worker as a child process with only PATH and
 * `env` in its environment, and resolves once its /health/live answers (so LOG_LEVEL may be warn).
 * A port found free can be taken by a parallel suite (a cluster's bus port) before the child listens:
 * on EADDRINUSE it starts again on another free port, twice at most (the returned `port` and `url`
 * say where it listens).
 */
export async function spawnService(
  role: 'gateway' | 'worker',
  port: number,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServiceProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnce(role, port, env, timeoutMs);
    } catch (err) {
      if (attempt === 3 || !(err as Error).message.includes('EADDRINUSE')) throw err;
      [port] = (await freePorts(1)) as [number];
    }
  }
}

async function spawnOnce(
  role: 'gateway' | 'worker',
  port: number,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<ServiceProcess> {
  const main = role === 'gateway' ? GATEWAY_MAIN : WORKER_MAIN;
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` before these tests`);
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env['PATH'] ?? '',
      NO_COLOR: '1',
      LOG_LEVEL: 'warn',
      ...env,
      ...(role === 'gateway'
        ? { PORT: String(port), EMBEDDED_WORKER: 'false' }
        : { WORKER_PORT: String(port) }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const url = `http://127.0.0.1:${port}`;
  const service: ServiceProcess = {
    role,
    port,
    url,
    process: child,
    output: () => output,
    exitCode: () => (running() ? null : (child.exitCode ?? 'signal')),
    async stop(graceMs = 5000) {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const started = await waitFor(
    async () => {
      if (!running()) return 'exited';
      const res = await fetch(`${url}/health/live`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200 && 'started';
    },
    `the ${role} on port ${port} to answer /health/live`,
    timeoutMs,
  ).catch((err: Error) => err.message);
  if (started !== 'started') {
    await service.stop(0);
    throw new Error(`the ${role} did not start (${started}):\n${output}`);
  }
  return service;
}

/**
 * Several services on spare ports, started together with the same environment. If one fails to
 * start, the others are stopped before the error is thrown: a child left running would hold jest
 * open after the run.
 */
export async function spawnServices(
  roles: ('gateway' | 'worker')[],
  env: Record<string, string>,
): Promise<ServiceProcess[]> {
  const ports = await freePorts(roles.length);
  const started = await Promise.allSettled(roles.map((role, i) => spawnService(role, ports[i]!, env)));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const services = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    await Promise.all(services.map((s) => s.stop()));
    throw failed.reason;
  }
  return services;
}

/** A gateway and a worker on spare ports, started together with the same environment. */
export async function spawnGatewayAndWorker(
  env: Record<string, string>,
): Promise<{ gateway: ServiceProcess; worker: ServiceProcess }> {
  const [gateway, worker] = (await spawnServices(['gateway', 'worker'], env)) as [
    ServiceProcess,
    ServiceProcess,
  ];
  return { gateway, worker };
}
