// Builds the N-API addon with node-gyp against the running Node's own headers (no download),
// then copies it to prebuilds/<platform>-<arch>/ where the packed package ships it.
//
// node-gyp comes from this package's devDependencies when installed, otherwise from the npm that
// ships with Node. Set UMFA_NODE_GYP to use another one.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function findNodeGyp() {
  if (process.env.UMFA_NODE_GYP) return process.env.UMFA_NODE_GYP;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // fall through to npm's copy
  }
  const prefix = resolve(dirname(process.execPath), '..');
  for (const p of [
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ]) {
    if (existsSync(p)) return p;
  }
  throw new Error('node-gyp not found: install it (npm i -g node-gyp) or set UMFA_NODE_GYP');
}

// The headers of the running Node, when its installation has them: building against them needs
// no network access.
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}

const gyp = findNodeGyp();
const nodedir = findNodeDir();
const args = [gyp, 'rebuild', '--release', '--loglevel=warn', `--jobs=${process.env.UMFA_JOBS ?? '2'}`];
if (nodedir) args.push(`--nodedir=${nodedir}`);
console.log(`build-addon: node ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}`);
const r = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

const built = join(here, 'build', 'Release', 'umfa_napi.node');
const target = join(here, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(target, { recursive: true });
copyFileSync(built, join(target, 'umfa_napi.node'));
console.log(`build-addon: ${built} -> ${join(target, 'umfa_napi.node')}`);
