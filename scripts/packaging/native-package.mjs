#!/usr/bin/env node
// Fills one per-platform npm package (packages/native-<platform>[-gnu]) with the core's install
// for its platform, dist/native/<platform>/ as `bash scripts/build-native.sh <platform>` (or, for
// this machine's own platform, `bash core/scripts/build.sh`) leaves it.
//
//   node scripts/packaging/native-package.mjs build [packageDir]   (the package's `build` script)
//   node scripts/packaging/native-package.mjs pack  [packageDir]   (the package's `prepack` script)
//
// packageDir defaults to the current folder (npm and pnpm run scripts in the package's folder).
// The package names its platform in package.json, `"umfa": { "platform": "linux-arm64" }`.
// UMFA_NATIVE_DIR overrides the install folder (the one holding lib/ and, on Windows, bin/).
//
// `pack` refuses, with a non-zero exit, a package whose library is absent or built for another
// CPU or OS: an empty or wrong platform package is never published. `build` is what the workspace
// build runs on every machine: for this machine's own platform it fails the same way (the core's
// build target ran just before and must have produced the library); for any other platform an
// absent install is expected (this machine cannot build darwin, and builds linux-arm64 and
// win32-x64 only on request), so it empties lib/ and says how to produce it, without failing.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ABI = 1;
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Per platform: the files a package ships, each as [name in the package, candidates in the install
 * (relative to it), required]. The first candidate that exists is copied under the package name
 * (symlinks resolved: npm does not pack them).
 */
export const LAYOUT = {
  'linux-x64': [
    [`libumfa.so.${ABI}`, [`lib/libumfa.so.${ABI}`, 'lib/libumfa.so'], true],
    ['libumfa_cuda.so', ['lib/libumfa_cuda.so'], false],
  ],
  'linux-arm64': [
    [`libumfa.so.${ABI}`, [`lib/libumfa.so.${ABI}`, 'lib/libumfa.so'], true],
    ['libumfa_cuda.so', ['lib/libumfa_cuda.so'], false],
  ],
  'win32-x64': [
    ['umfa.dll', ['bin/umfa.dll', 'lib/umfa.dll', 'bin/libumfa.dll', 'lib/libumfa.dll'], true],
    ['umfa_cuda.dll', ['bin/umfa_cuda.dll', 'lib/umfa_cuda.dll'], false],
  ],
  'darwin-arm64': [[`libumfa.${ABI}.dylib`, [`lib/libumfa.${ABI}.dylib`, 'lib/libumfa.dylib'], true]],
  'darwin-x64': [[`libumfa.${ABI}.dylib`, [`lib/libumfa.${ABI}.dylib`, 'lib/libumfa.dylib'], true]],
};

/** Reads the first `n` bytes of a file. */
function head(path, n) {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * The `<os>-<cpu>` a shared library is built for, read from its header (ELF, PE or Mach-O), or
 * a description of what it is instead.
 */
export function binaryPlatform(path) {
  const h = head(path, 4096);
  if (h.length >= 20 && h[0] === 0x7f && h.toString('latin1', 1, 4) === 'ELF') {
    const little = h[5] === 1;
    const machine = little ? h.readUInt16LE(18) : h.readUInt16BE(18);
    const cpu = { 62: 'x64', 183: 'arm64', 3: 'ia32', 40: 'arm' }[machine] ?? `elf-machine-${machine}`;
    return `linux-${cpu}`;
  }
  if (h.length >= 64 && h.toString('latin1', 0, 2) === 'MZ') {
    const pe = h.readUInt32LE(0x3c);
    if (pe + 6 <= h.length && h.toString('latin1', pe, pe + 4) === 'PE\0\0') {
      const machine = h.readUInt16LE(pe + 4);
      const cpu = { 0x8664: 'x64', 0xaa64: 'arm64', 0x14c: 'ia32' }[machine] ?? `pe-machine-0x${machine.toString(16)}`;
      return `win32-${cpu}`;
    }
  }
  if (h.length >= 8) {
    const magic = h.readUInt32LE(0);
    if (magic === 0xfeedfacf) {
      const cputype = h.readUInt32LE(4);
      const cpu = { 0x01000007: 'x64', 0x0100000c: 'arm64' }[cputype] ?? `macho-cpu-0x${cputype.toString(16)}`;
      return `darwin-${cpu}`;
    }
    if (h.readUInt32BE(0) === 0xcafebabe) return 'darwin-universal';
  }
  return 'not a shared library';
}

function hostPlatform() {
  return `${process.platform}-${process.arch}`;
}

function isHostPackage(platform) {
  if (platform !== hostPlatform()) return false;
  if (process.platform !== 'linux') return true;
  const report = process.report?.getReport();
  return Boolean(report?.header?.glibcVersionRuntime); // the -gnu packages need glibc
}

function fail(message) {
  console.error(`native-package: ${message}`);
  process.exit(1);
}

function main() {
  const [mode, dirArg] = process.argv.slice(2);
  if (mode !== 'build' && mode !== 'pack') fail('usage: native-package.mjs build|pack [packageDir]');
  const pkgDir = resolve(dirArg ?? process.cwd());
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const platform = manifest.umfa?.platform;
  const layout = LAYOUT[platform];
  if (!layout) fail(`${manifest.name}: package.json names no known platform in umfa.platform (${platform})`);
  const install = resolve(process.env.UMFA_NATIVE_DIR ?? join(repoRoot, 'dist', 'native', platform));
  const target = join(pkgDir, 'lib');
  const how =
    platform === hostPlatform()
      ? `bash core/scripts/build.sh (or bash scripts/build-native.sh ${platform})`
      : platform.startsWith('darwin')
        ? `bash scripts/build-native.sh ${platform} on a Mac`
        : `bash scripts/build-native.sh ${platform}`;

  // Never leave a previous copy behind: what lib/ holds is what this run found.
  rmSync(target, { recursive: true, force: true });

  const plan = [];
  const missing = [];
  for (const [name, candidates, required] of layout) {
    const found = candidates.map((c) => join(install, c)).find((p) => existsSync(p));
    if (found) plan.push([name, found]);
    else if (required) missing.push(`${name} (looked for ${candidates.map((c) => join(install, c)).join(', ')})`);
  }
  if (missing.length > 0) {
    const message = `${manifest.name}: no library for ${platform}: ${missing.join('; ')}. Produce it with: ${how}`;
    if (mode === 'pack') fail(`${message}. Refusing to pack a package without its library.`);
    if (isHostPackage(platform)) fail(message);
    console.log(`native-package: ${manifest.name}: skipped, ${platform} is not built on this machine (${how} builds it; packing needs it)`);
    return;
  }
  for (const [name, from] of plan) {
    const actual = binaryPlatform(from);
    const wanted = platform === 'darwin-arm64' || platform === 'darwin-x64' ? [platform, 'darwin-universal'] : [platform];
    if (!wanted.includes(actual)) fail(`${manifest.name}: ${from} is built for ${actual}, not ${platform}`);
  }
  mkdirSync(target, { recursive: true });
  for (const [name, from] of plan) copyFileSync(from, join(target, name));
  console.log(`native-package: ${manifest.name}: ${plan.map(([n]) => n).join(', ')} <- ${install}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
