// The publishable libraries as npm packages: for each, a package directory under dist/packages/<name>/
// (compiled ESM, .d.ts, Lua, README, LICENSE, a package.json made for publishing) and its tarball,
// dist/packages/<scope>-<name>-<version>.tgz, made by `npm pack`. Self-contained: it compiles the two
// libraries itself (tsconfig.pack.json), so it does not need `npm run build` first.
// `--out <dir>` puts the package directories and tarballs there instead of dist/packages.
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outFlag = process.argv.indexOf('--out');
const outArg = outFlag > 0 ? process.argv[outFlag + 1] : 'dist/packages';
if (!outArg || outArg.startsWith('-')) throw new Error('--out needs a directory');
// Emptied first: never the repository, nor a directory holding it.
const out = resolve(root, outArg);
if (!relative(out, root).startsWith('..')) throw new Error(`--out ${out} would hold the repository`);
const build = join(out, '.tsc');
const rootPackage = readJson(join(root, 'package.json'));
const NODE_RANGE = '>=20.19';

/**
 * The libraries published as packages. `imports`: the package's own `#` aliases (how its source
 * names another library), each to a package it must then declare; `siblingPeers`: peer dependencies
 * on the other libraries' packages, at their current version.
 */
const LIBRARIES = [
  { dir: 'session-store', imports: {}, siblingPeers: [] },
  {
    dir: 'token-verifier',
    // The verifier takes the application's SessionStore and tells the store's errors apart with
    // instanceof: one copy of the session store must serve both, hence a peer dependency.
    imports: { '#session-store': '@session-revoker/session-store' },
    siblingPeers: ['session-store'],
  },
];

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** `./src/x.js` (a lib's export in the repository) -> `./dist/x` (its place in the package, no extension). */
function packagedPath(target) {
  const match = /^\.\/src\/(.+)\.js$/.exec(target);
  if (!match) throw new Error(`cannot map export target ${target}: expected ./src/<file>.js`);
  return `./dist/${match[1]}`;
}

function compile() {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.pack.json'), '--outDir', build], {
    cwd: root,
    stdio: 'inherit',
  });
}

function license(libPackage) {
  const rootLicense = ['LICENSE', 'LICENSE.md', 'LICENSE.txt'].map((f) => join(root, f)).find(existsSync);
  if (rootLicense) return readFileSync(rootLicense, 'utf8');
  const spdx = libPackage.license ?? rootPackage.license;
  if (spdx !== 'MIT')
    throw new Error(`no LICENSE file in the repository and the licence is ${spdx}, not MIT`);
  return `MIT License

Copyright (c) ${new Date().getFullYear()} the Session Revoker contributors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;
}

/** The package.json that ships: the lib's own, with exports, engines, files and dependencies for publishing. */
function manifest(lib, libPackage) {
  const exports = {};
  for (const [subpath, target] of Object.entries(libPackage.exports ?? {})) {
    if (typeof target !== 'string') throw new Error(`${libPackage.name}: export ${subpath} must be a string`);
    const path = packagedPath(target);
    // ESM only: no `require` condition (a CommonJS application on Node >= 20.19 can still load
    // the package with `await import()`).
    exports[subpath] = { types: `${path}.d.ts`, import: `${path}.js` };
  }
  exports['./package.json'] = './package.json';
  const peerDependencies = { ...libPackage.peerDependencies };
  for (const sibling of lib.siblingPeers) {
    const siblingPackage = readJson(join(root, 'libs', sibling, 'package.json'));
    peerDependencies[siblingPackage.name] = `^${siblingPackage.version}`;
  }
  const pkg = {
    name: libPackage.name,
    version: libPackage.version,
    description: libPackage.description,
    license: libPackage.license ?? rootPackage.license,
    type: 'module',
    exports,
    ...(Object.keys(lib.imports).length > 0 && { imports: lib.imports }),
    files: ['dist', 'README.md', 'LICENSE'],
    engines: { node: NODE_RANGE },
    ...(libPackage.dependencies && { dependencies: libPackage.dependencies }),
    peerDependencies,
    ...(libPackage.peerDependenciesMeta && { peerDependenciesMeta: libPackage.peerDependenciesMeta }),
  };
  if (!pkg.version || !pkg.name) throw new Error(`libs/${lib.dir}/package.json needs a name and a version`);
  return pkg;
}

const SPECIFIERS = [
  /\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/**
 * Every import of the package's code and types stays inside it, or names a Node builtin, one of its
 * own `#` aliases, or a package it declares: what an installed copy can resolve.
 */
function checkImports(dir, pkg) {
  const declared = new Set(Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies }));
  const problems = [];
  for (const file of walk(dir).filter((f) => /\.(js|d\.ts)$/.test(f))) {
    const code = readFileSync(file, 'utf8');
    for (const pattern of SPECIFIERS)
      for (const [, spec] of code.matchAll(pattern)) {
        const where = `${relative(root, file)}: '${spec}'`;
        if (spec.startsWith('.')) {
          const target = resolve(dirname(file), spec);
          if (!target.startsWith(dir + sep)) problems.push(`${where} leaves the package`);
          else if (!existsSync(target)) problems.push(`${where} is not in the package`);
        } else if (spec.startsWith('#')) {
          if (!(spec in (pkg.imports ?? {}))) problems.push(`${where} is not in the package's imports`);
        } else if (spec.startsWith('node:') || builtinModules.includes(spec)) {
          // a Node builtin
        } else {
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
          if (!declared.has(name)) problems.push(`${where}: ${name} is not a declared dependency`);
        }
      }
  }
  for (const target of Object.values(pkg.imports ?? {}))
    if (!declared.has(target))
      problems.push(`${pkg.name}: imports maps to ${target}, not a declared dependency`);
  if (problems.length > 0)
    throw new Error(`${pkg.name} imports what it cannot have:\n  ${problems.join('\n  ')}`);
}

function assemble(lib) {
  const libPackage = readJson(join(root, 'libs', lib.dir, 'package.json'));
  const pkg = manifest(lib, libPackage);
  const dir = join(out, lib.dir);
  const dist = join(dir, 'dist');
  mkdirSync(dist, { recursive: true });
  cpSync(join(build, lib.dir, 'src'), dist, { recursive: true });
  // The Lua scripts, loaded at runtime from `new URL('./lua/', import.meta.url)`, includes and all.
  const src = join(root, 'libs', lib.dir, 'src');
  for (const file of walk(src).filter((f) => f.endsWith('.lua'))) {
    const target = join(dist, relative(src, file));
    mkdirSync(dirname(target), { recursive: true });
    cpSync(file, target);
  }
  const readme = join(root, 'libs', lib.dir, 'README.md');
  if (!existsSync(readme)) throw new Error(`libs/${lib.dir}/README.md is missing`);
  cpSync(readme, join(dir, 'README.md'));
  writeFileSync(join(dir, 'LICENSE'), license(libPackage));
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
  for (const [subpath, conditions] of Object.entries(pkg.exports))
    for (const file of typeof conditions === 'string' ? [conditions] : Object.values(conditions))
      if (!existsSync(join(dir, file)))
        throw new Error(`${pkg.name}: export ${subpath} names missing ${file}`);
  checkImports(dir, pkg);
  return dir;
}

function pack(dir) {
  const [result] = JSON.parse(
    execFileSync('npm', ['pack', dir, '--pack-destination', out, '--json', '--ignore-scripts'], {
      cwd: out,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  return join(out, result.filename);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
compile();
const tarballs = LIBRARIES.map((lib) => pack(assemble(lib)));
rmSync(build, { recursive: true, force: true });
for (const tarball of tarballs) console.log(relative(process.cwd(), tarball));
