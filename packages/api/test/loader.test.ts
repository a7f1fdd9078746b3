// The library lookup as a user on each platform meets it: the package name it resolves, the file
// names it looks for, and the error when nothing is found, simulated for platforms this machine
// is not (the loader takes the platform as an option).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  currentPlatform,
  findNativeLibrary,
  hasPlatformPackage,
  libraryFileNames,
  NATIVE_PACKAGES,
  platformDir,
  platformPackageName,
  type TargetPlatform,
} from '../src/internal.js';
import { UmfaLoadError } from '../src/index.js';

// A folder outside any umfa workspace with no node_modules: only UMFA_LIB_DIR can find anything.
const outside = mkdtempSync(join(tmpdir(), 'umfa-loader-'));
const from = pathToFileURL(join(outside, 'app', 'index.js')).href;
afterAll(() => rmSync(outside, { recursive: true, force: true }));

function loadError(target: TargetPlatform, env: NodeJS.ProcessEnv = {}): UmfaLoadError {
  try {
    findNativeLibrary({ from, env, target });
  } catch (e) {
    expect(e).toBeInstanceOf(UmfaLoadError);
    return e as UmfaLoadError;
  }
  throw new Error('findNativeLibrary found a library where none exists');
}

describe('platform packages', () => {
  it('names one package per published platform, as the packages in this repository are named', () => {
    const cases: [TargetPlatform, string, string][] = [
      [{ platform: 'linux', arch: 'x64', libc: 'glibc' }, '@umfa/native-linux-x64-gnu', 'libumfa.so.1'],
      [{ platform: 'linux', arch: 'arm64', libc: 'glibc' }, '@umfa/native-linux-arm64-gnu', 'libumfa.so.1'],
      [{ platform: 'win32', arch: 'x64' }, '@umfa/native-win32-x64', 'umfa.dll'],
      [{ platform: 'darwin', arch: 'arm64' }, '@umfa/native-darwin-arm64', 'libumfa.1.dylib'],
      [{ platform: 'darwin', arch: 'x64' }, '@umfa/native-darwin-x64', 'libumfa.1.dylib'],
    ];
    for (const [target, pkg, file] of cases) {
      expect(platformPackageName(target)).toBe(pkg);
      expect(hasPlatformPackage(target)).toBe(true);
      expect(libraryFileNames(target)[0]).toBe(file);
    }
    expect([...NATIVE_PACKAGES].sort()).toEqual(cases.map((c) => c[1]).sort());
  });

  it('knows this machine', () => {
    const here = currentPlatform();
    expect(here.platform).toBe(process.platform);
    expect(here.arch).toBe(process.arch);
    expect(platformDir()).toBe(`${process.platform}-${process.arch}`);
  });
});

describe('the error when no library is found', () => {
  const ways = (dir: string) => [
    `bash scripts/build-native.sh ${dir}`,
    `UMFA_LIB_DIR=<checkout>/dist/native/${dir}/lib`,
    'linux-x64-gnu, linux-arm64-gnu, win32-x64, darwin-arm64, darwin-x64',
  ];

  for (const target of [
    { platform: 'freebsd', arch: 'x64' },
    { platform: 'linux', arch: 'ppc64', libc: 'glibc' },
    { platform: 'linux', arch: 'x64', libc: 'musl' },
    { platform: 'win32', arch: 'arm64' },
  ] as TargetPlatform[]) {
    it(`on ${platformDir(target)}${target.libc ? ` (${target.libc})` : ''}, which has no package: names the platform and both ways out`, () => {
      const e = loadError(target);
      const dir = platformDir(target);
      expect(e.message).toContain(`for ${dir}`);
      expect(e.message).toContain('publishes no prebuilt library for this platform');
      for (const w of ways(dir)) expect(e.message).toContain(w);
      // Not the "Cannot find package" of a module resolver.
      expect(e.message).not.toMatch(/cannot find (package|module)/i);
      expect(e.tried).toHaveLength(3);
      expect(e.tried[2]).toContain(`none is published for ${dir}`);
      if (target.libc === 'musl') expect(e.message).toContain('(musl)');
    });
  }

  it('on a published platform whose optional package was not installed: says so, and both ways out', () => {
    const target: TargetPlatform = { platform: 'linux', arch: 'arm64', libc: 'glibc' };
    const e = loadError(target);
    expect(e.message).toContain('for linux-arm64 (glibc)');
    for (const w of ways('linux-arm64')) expect(e.message).toContain(w);
    // Inside this workspace pnpm links every package, so the module resolver (through NODE_PATH)
    // may find the arm64 package folder, unbuilt; a user's install has no folder at all.
    if (e.tried[2] === 'package @umfa/native-linux-arm64-gnu: not installed') {
      expect(e.message).toContain('optional dependency @umfa/native-linux-arm64-gnu, which was not installed');
      expect(e.message).toContain('--omit=optional');
    } else {
      expect(e.tried[2]).toMatch(/^package @umfa\/native-linux-arm64-gnu: .*native-linux-arm64-gnu\/lib\/libumfa\.so\.1 \(not found\)$/);
      expect(e.message).toContain('optional dependency @umfa/native-linux-arm64-gnu is installed at');
      expect(e.message).toContain('but holds no library');
    }
  });

  it('finds the simulated platform\'s file name in UMFA_LIB_DIR (the way out it names)', () => {
    const dir = join(outside, 'win');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'umfa.dll'), '');
    const found = findNativeLibrary({ from, env: { UMFA_LIB_DIR: dir }, target: { platform: 'win32', arch: 'x64' } });
    expect(found.source).toBe('UMFA_LIB_DIR');
    expect(found.path).toBe(join(dir, 'umfa.dll'));
    // The same folder has no library for Linux: the lookup goes on and fails with the message.
    // (An architecture with no package: pnpm's shims put the workspace's packages on NODE_PATH,
    // so a linux-x64 lookup could still find the built platform package from any folder.)
    const e = loadError({ platform: 'linux', arch: 'riscv64', libc: 'glibc' }, { UMFA_LIB_DIR: dir });
    expect(e.tried[0]).toBe(`UMFA_LIB_DIR: ${join(dir, 'libumfa.so.1')} (not found)`);
  });
});
