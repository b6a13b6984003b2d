// tsc does not copy non-TypeScript files: put Lua scripts (and the demo's sample) next to the code that loads them.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function copy(dir, extension) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) copy(path, extension);
    else if (name.endsWith(extension)) cpSync(path, join('dist', path));
  }
}
copy('libs', '.lua');
// The demo's sample PingOne batch.
copy('examples', '.json');
// The session store is publishable on its own: its package.json goes with its compiled code.
cpSync('libs/session-store/package.json', 'dist/libs/session-store/package.json');
