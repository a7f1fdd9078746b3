// Before packing: make sure the prebuilt addon exists and ship a copy of the ABI header so the
// addon can be rebuilt from the tarball (`node-gyp rebuild` in the installed package).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(here, 'prebuilds', `${process.platform}-${process.arch}`, 'umfa_napi.node');
if (!existsSync(prebuilt)) {
  console.error(`prepack: ${prebuilt} is missing; run the build first (pnpm --filter @umfa/napi build)`);
  process.exit(1);
}
mkdirSync(join(here, 'native', 'include'), { recursive: true });
copyFileSync(join(here, '..', '..', 'include', 'umfa.h'), join(here, 'native', 'include', 'umfa.h'));
