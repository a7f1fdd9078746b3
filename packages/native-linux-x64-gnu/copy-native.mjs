// Copies the core's install (dist/native/linux-x64/lib) into this package's lib/ so that
// `pnpm pack` ships it. The copies are build outputs, never committed.
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(process.env.UMFA_NATIVE_DIR ?? join(here, '..', '..', 'dist', 'native', 'linux-x64', 'lib'));
const target = join(here, 'lib');
const abi = 1;

if (!existsSync(join(source, `libumfa.so.${abi}`)) && !existsSync(join(source, 'libumfa.so'))) {
  console.error(`copy-native: no libumfa.so.${abi} in ${source}; build the core first (bash core/scripts/build.sh)`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
// Symlinks are not packed: copy the library under its SONAME (libumfa.so.1) and the optional
// CUDA backend under the name the core loads it by, each resolved to its target's bytes.
const copied = [];
const wanted = [[`libumfa.so.${abi}`, 'libumfa.so'], ['libumfa_cuda.so']];
for (const names of wanted) {
  const name = names.find((n) => existsSync(join(source, n)));
  if (name === undefined) continue;
  copyFileSync(join(source, name), join(target, names[0]));
  copied.push(names[0]);
}
console.log(`copy-native: ${copied.join(', ')} -> ${target}`);
