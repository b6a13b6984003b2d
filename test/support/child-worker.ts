import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { waitFor } from './redis.js';

/** The built worker entry point: `npm run build` makes it (CI builds before the tests). */
export const WORKER_MAIN = resolve('dist/apps/worker/src/main.js');

/** Fails with a message that says what to do when the worker has not been built. */
export function assertWorkerBuilt(): void {
  if (!existsSync(WORKER_MAIN))
    throw new Error(
      `${WORKER_MAIN} is missing: run \`npm run build\` before these tests (they start the built worker as a child process)`,
    );
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  at: number;
}

export interface ChildWorker {
  process: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr, interleaved). */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<ChildExit>;
  /** SIGKILLs the process if it is still running and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts `node dist/apps/worker/src/main.js` with only PATH and `env` in its environment, and resolves
 * once it logged `worker started` (rejects with its output if it exits or does not start in time).
 */
export async function spawnWorker(env: Record<string, string>, timeoutMs = 20_000): Promise<ChildWorker> {
  assertWorkerBuilt();
  const child = spawn(process.execPath, [WORKER_MAIN], {
    env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exit: ChildExit | undefined;
  const exited = new Promise<ChildExit>((resolveExit) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal, at: Date.now() };
      resolveExit(exit);
    }),
  );
  const handle: ChildWorker = {
    process: child,
    output: () => output,
    exited,
    async stop() {
      if (!exit) child.kill('SIGKILL');
      await exited;
    },
  };
  const started = await waitFor(
    () => (exit ? 'exited' : output.includes('worker started') && 'started'),
    'the worker child process to start',
    timeoutMs,
  ).catch(() => 'timed out');
  if (started !== 'started') {
    await handle.stop();
    throw new Error(`the worker child process ${started} before it started:\n${output}`);
  }
  return handle;
}
