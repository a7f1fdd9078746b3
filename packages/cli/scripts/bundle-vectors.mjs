#!/usr/bin/env node
// Copies a compact set of the conformance vectors into the package (vectors/), so that
// `umfa check` run from an install — outside any checkout of the repository — has vectors to
// run. Run by the package's build; the folder is generated, not committed.
//
// The set: every case of conformance/manifest.json whose files take at most MAX_CASE_BYTES,
// which keeps every feature the manifest covers (dtypes, GQA, masks, windows, softcap, ALiBi,
// varlen, backward) and drops only the large shapes. The manifest written next to them is the
// repository's, with only those cases.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_CASE_BYTES = 32 * 1024;
const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const conformance = join(pkg, '..', '..', 'conformance');
const out = join(pkg, 'vectors');
const source = join(conformance, 'manifest.json');
if (!existsSync(source)) {
  console.error(`bundle-vectors: ${source} not found`);
  process.exit(1);
}
const manifest = JSON.parse(readFileSync(source, 'utf8'));

/** Every `file` a case names. */
function filesOf(value, found = new Set()) {
  if (Array.isArray(value)) for (const v of value) filesOf(v, found);
  else if (value && typeof value === 'object') {
    if (typeof value.file === 'string') found.add(value.file);
    for (const v of Object.values(value)) filesOf(v, found);
  }
  return found;
}

rmSync(out, { recursive: true, force: true });
const kept = [];
let bytes = 0;
for (const c of manifest.cases) {
  const files = [...filesOf(c)];
  const size = files.reduce((n, f) => n + statSync(join(conformance, f)).size, 0);
  if (size > MAX_CASE_BYTES) continue;
  for (const f of files) {
    mkdirSync(dirname(join(out, f)), { recursive: true });
    copyFileSync(join(conformance, f), join(out, f));
  }
  kept.push(c);
  bytes += size;
}
const { merge_cases: _merge, ...rest } = manifest;
writeFileSync(
  join(out, 'manifest.json'),
  `${JSON.stringify({ ...rest, description: `${manifest.description ?? 'umfa conformance vectors'} (the compact set shipped with @umfa/cli: cases of at most ${MAX_CASE_BYTES} bytes)`, cases: kept }, null, 1)}\n`,
);
console.log(`bundle-vectors: ${kept.length} of ${manifest.cases.length} cases, ${(bytes / 1024).toFixed(0)} KiB, in vectors/`);
