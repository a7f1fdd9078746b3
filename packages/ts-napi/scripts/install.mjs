// npm/pnpm install hook. The package ships a prebuilt addon for Linux x64; on other platforms
// (or when the prebuild is missing) it builds from source with node-gyp. Inside the umfa
// workspace it does nothing: the build target compiles the addon.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(here, 'prebuilds', `${process.platform}-${process.arch}`, 'umfa_napi.node');
const local = join(here, 'build', 'Release', 'umfa_napi.node');
const workspace = existsSync(join(here, '..', '..', 'pnpm-workspace.yaml')) && existsSync(join(here, 'src'));
if (existsSync(prebuilt) || existsSync(local) || workspace) process.exit(0);
await import('./build-addon.mjs');
