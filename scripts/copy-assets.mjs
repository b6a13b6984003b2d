// tsc does not copy non-TypeScript files: put each library's Lua scripts next to the compiled code that loads them.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function copyLua(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) copyLua(path);
    else if (name.endsWith('.lua')) cpSync(path, join('dist', path));
  }
}
copyLua('libs');
// The session store is publishable on its own: its package.json goes with its compiled code.
cpSync('libs/session-store/package.json', 'dist/libs/session-store/package.json');
