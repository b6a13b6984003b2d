// Child processes and /proc readings for the benches: throw-away redis-servers and the service's
// processes, each killed when the bench ends, fails or is interrupted.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/bench/procs.js). */
export const root = fileURLToPath(new URL('../../', import.meta.url));

/** Linux reports process CPU time in USER_HZ ticks, 100 per second on every mainstream kernel. */
const CLOCK_TICKS = 100;

export interface Child {
  name: string;
  pid: number;
  port: number;
  child: ChildProcess;
  /** The last lines it printed, for the error message when it dies. */
  log(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** A port nobody listens on now: the OS picks it, we release it and hand it to the child. */
export function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Spawns a child that is killed when this process exits, however it exits; its output is kept, not shown. */
export function spawnChild(
  name: string,
  port: number,
  command: string,
  args: string[],
  env: Record<string, string> = {},
  cleanup?: () => void,
): Child {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const alive = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    process.off('exit', killOnExit);
    if (alive()) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    cleanup?.();
  };
  return { name, pid: child.pid ?? -1, port, child, log: () => tail, alive, stop };
}

/** Resolves once `ready()` does; rejects when the child exits first or 20 s pass. */
export async function waitFor(child: Child, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (!child.alive())
      throw new Error(
        `${child.name} exited (${child.child.exitCode ?? child.child.signalCode})\n${child.log()}`,
      );
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${child.name} not ready after 20 s\n${child.log()}`);
}

export const httpOk = (port: number, path: string) => async () =>
  (await fetch(`http://127.0.0.1:${port}${path}`)).status === 200;

/** redis-server on a spare port, persistence off, so the bench may write and delete freely. */
export async function startRedis(): Promise<Child> {
  const port = await sparePort();
  if (port === 6379) throw new Error('refusing to use the shared Redis port 6379');
  const dir = mkdtempSync(join(tmpdir(), 'bench-redis-'));
  const args = ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'];
  const child = spawnChild('redis-server', port, 'redis-server', [...args, '--dir', dir], {}, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  await waitFor(child, async () => child.log().includes('Ready to accept connections'));
  return child;
}

/** Seconds of CPU (user + system) a process has used so far, from /proc/<pid>/stat; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Seconds of CPU the whole machine has spent busy (all cores, everything but idle and iowait). */
export function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS;
}

export const loadAverage = () =>
  loadavg()
    .map((v) => v.toFixed(2))
    .join(' ');

export interface CpuReading {
  /** Seconds of wall time since the meter started. */
  wall: number;
  /** CPU seconds each named process used (plus `bench`, this process, and `others`, the rest of the machine). */
  seconds: Record<string, number>;
}

/** CPU used by each named process (and by the rest of the machine) between now and each call of the result. */
export function cpuMeter(pids: Record<string, () => number>): () => CpuReading {
  const t0 = process.hrtime.bigint();
  const self0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid())]));
  return () => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const seconds: Record<string, number> = {};
    let known = 0;
    for (const [k, pid] of Object.entries(pids)) {
      seconds[k] = cpuSeconds(pid()) - before[k]!;
      known += seconds[k]!;
    }
    const self = process.cpuUsage(self0);
    seconds['bench'] = (self.user + self.system) / 1e6;
    known += seconds['bench'];
    seconds['others'] = Math.max(0, machineBusySeconds() - machine0 - known);
    return { wall, seconds };
  };
}
