// Preloaded into the worker by `npm run bench:e2e` when BENCH_PROFILE_DIR is set
// (`node --import ./dist/bench/e2e-cpu-profile.js ...`): the first SIGUSR2 starts V8's CPU profiler, the
// next one stops it and writes <BENCH_PROFILE_DIR>/worker-<pid>-<n>.cpuprofile (open it in Chrome DevTools).
// So the bench profiles exactly the drain it times, without the boot. No effect without the signal.
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env['BENCH_PROFILE_DIR'] ?? '.';
const session = new Session();
let profiling = false;
let written = 0;

session.connect();
process.on('SIGUSR2', () => {
  void (async () => {
    if (!profiling) {
      profiling = true;
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 250 });
      await session.post('Profiler.start');
      return;
    }
    profiling = false;
    const { profile } = await session.post('Profiler.stop');
    const file = join(dir, `worker-${process.pid}-${++written}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    console.log(`cpu profile written to ${file}`);
  })();
});
