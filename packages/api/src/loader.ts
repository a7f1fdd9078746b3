import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ABI_VERSION } from './abi.js';
import { UmfaLoadError } from './errors.js';

/** Where a native library candidate came from. */
export type LibrarySource = 'UMFA_LIB_DIR' | 'workspace' | 'platform-package';

/** The result of {@link findNativeLibrary}. */
export interface FoundLibrary {
  /** Absolute path of the shared library. */
  path: string;
  /** Which rule found it. */
  source: LibrarySource;
  /** Every location looked at before (and including) the one found. */
  tried: string[];
}

/** Options of {@link findNativeLibrary}. */
export interface FindLibraryOptions {
  /**
   * `import.meta.url` of the binding package: the workspace search starts there and the platform
   * package is resolved from there.
   */
  from: string;
  /** Environment to read `UMFA_LIB_DIR` from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The platform to look for; default {@link currentPlatform} (tests simulate others). */
  target?: TargetPlatform;
}

/**
 * The platform a library is looked for: Node's `process.platform` and `process.arch`, and on
 * Linux the C library. Tests pass another one to see what a user there gets.
 */
export interface TargetPlatform {
  /** `process.platform` spelling: `"linux"`, `"darwin"`, `"win32"`, ... */
  platform: string;
  /** `process.arch` spelling: `"x64"`, `"arm64"`, ... */
  arch: string;
  /** Linux only: which C library the process runs on. */
  libc?: 'glibc' | 'musl';
}

function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return !report?.header?.glibcVersionRuntime;
}

/** The platform this process runs on. */
export function currentPlatform(): TargetPlatform {
  const t: TargetPlatform = { platform: process.platform, arch: process.arch };
  if (process.platform === 'linux') t.libc = isMusl() ? 'musl' : 'glibc';
  return t;
}

/** `"linux-x64"`, `"darwin-arm64"`, ...: the folder name under `dist/native/`. */
export function platformDir(target: TargetPlatform = currentPlatform()): string {
  return `${target.platform}-${target.arch}`;
}

/**
 * The name of the per-platform package carrying the native library, e.g.
 * `@umfa/native-linux-x64-gnu` (a name is returned for any platform; see
 * {@link NATIVE_PACKAGES} for those that exist).
 */
export function platformPackageName(target: TargetPlatform = currentPlatform()): string {
  const libc = target.platform === 'linux' ? (target.libc === 'musl' ? '-musl' : '-gnu') : '';
  return `@umfa/native-${target.platform}-${target.arch}${libc}`;
}

/**
 * The per-platform packages that are published (optional dependencies of `@umfa/koffi` and
 * `@umfa/napi`, each installed only where its `os`/`cpu`/`libc` fields match).
 */
export const NATIVE_PACKAGES: readonly string[] = [
  '@umfa/native-linux-x64-gnu',
  '@umfa/native-linux-arm64-gnu',
  '@umfa/native-win32-x64',
  '@umfa/native-darwin-arm64',
  '@umfa/native-darwin-x64',
];

/** Whether a prebuilt library is published for the platform. */
export function hasPlatformPackage(target: TargetPlatform = currentPlatform()): boolean {
  return NATIVE_PACKAGES.includes(platformPackageName(target));
}

/** File names of the shared library on the platform, most specific first. */
export function libraryFileNames(target: TargetPlatform = currentPlatform()): string[] {
  switch (target.platform) {
    case 'darwin':
      return [`libumfa.${ABI_VERSION}.dylib`, 'libumfa.dylib'];
    case 'win32':
      return ['umfa.dll'];
    default:
      return [`libumfa.so.${ABI_VERSION}`, 'libumfa.so'];
  }
}

/**
 * The message a user gets when no library is found: names the platform and the two ways out
 * (build the library from source with one command and point `UMFA_LIB_DIR` at it, or run on a
 * platform with a prebuilt package).
 */
export function noLibraryMessage(target: TargetPlatform = currentPlatform(), packageDir?: string): string {
  const dir = platformDir(target);
  const libc = target.platform === 'linux' ? ` (${target.libc ?? 'glibc'})` : '';
  const pkg = platformPackageName(target);
  const why = !hasPlatformPackage(target)
    ? 'umfa publishes no prebuilt library for this platform'
    : packageDir !== undefined
      ? `the optional dependency ${pkg} is installed at ${packageDir} but holds no library ` +
        '(a package folder of a source checkout, not built for this platform?)'
      : `its prebuilt library comes in the optional dependency ${pkg}, which was not installed ` +
        '(installs with --omit=optional / --no-optional skip it; reinstall without that flag)';
  const supported = NATIVE_PACKAGES.map((p) => p.replace('@umfa/native-', '')).join(', ');
  return (
    `umfa: no native library (${libraryFileNames(target).join(' or ')}) for ${dir}${libc}: ${why}. ` +
    'Two ways out: ' +
    `(1) build it from source in a checkout of the umfa repository with \`bash scripts/build-native.sh ${dir}\` ` +
    `(needs CMake and a C++17 compiler) and set UMFA_LIB_DIR=<checkout>/dist/native/${dir}/lib; ` +
    `(2) run on a platform with a prebuilt library: ${supported}.`
  );
}

function findIn(dir: string, tried: string[], label: string, target: TargetPlatform): string | undefined {
  const names = libraryFileNames(target);
  for (const name of names) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  tried.push(`${label}: ${join(dir, names[0] as string)} (not found)`);
  return undefined;
}

/**
 * Finds the umfa shared library, trying in order:
 * 1. `$UMFA_LIB_DIR` when set;
 * 2. a workspace build: the nearest ancestor folder of the binding that holds `include/umfa.h`
 *    and `dist/native/<platform>/lib/`;
 * 3. the per-platform package (see {@link platformPackageName}), an optional dependency.
 *
 * @throws UmfaLoadError with {@link noLibraryMessage} and every location tried when none has the
 *   library
 */
export function findNativeLibrary(options: FindLibraryOptions): FoundLibrary {
  const env = options.env ?? process.env;
  const target = options.target ?? currentPlatform();
  const tried: string[] = [];
  const envDir = env['UMFA_LIB_DIR'];
  if (envDir) {
    const p = findIn(envDir, tried, 'UMFA_LIB_DIR', target);
    if (p) return { path: p, source: 'UMFA_LIB_DIR', tried: [...tried, `UMFA_LIB_DIR: ${p}`] };
  } else {
    tried.push('UMFA_LIB_DIR: not set');
  }

  const start = dirname(fileURLToPath(options.from));
  let dir = start;
  let workspace: string | undefined;
  for (;;) {
    if (existsSync(join(dir, 'include', 'umfa.h')) && existsSync(join(dir, 'pnpm-workspace.yaml'))) {
      workspace = dir;
      break;
    }
    const parent = dirname(dir);
    if (parent === dir || dir === parse(dir).root) break;
    dir = parent;
  }
  if (workspace !== undefined) {
    const libDir = join(workspace, 'dist', 'native', platformDir(target), 'lib');
    const p = findIn(libDir, tried, 'workspace build', target);
    if (p) return { path: p, source: 'workspace', tried: [...tried, `workspace build: ${p}`] };
  } else {
    tried.push(`workspace build: no umfa workspace above ${start}`);
  }

  const pkg = platformPackageName(target);
  let packageDir: string | undefined;
  try {
    const require = createRequire(options.from);
    packageDir = dirname(require.resolve(`${pkg}/package.json`));
    const p = findIn(join(packageDir, 'lib'), tried, `package ${pkg}`, target);
    if (p) return { path: p, source: 'platform-package', tried: [...tried, `package ${pkg}: ${p}`] };
  } catch {
    tried.push(
      hasPlatformPackage(target) ? `package ${pkg}: not installed` : `package ${pkg}: not installed (none is published for ${platformDir(target)})`,
    );
  }
  throw new UmfaLoadError(noLibraryMessage(target, packageDir), tried);
}

/**
 * Refuses a library whose ABI version differs from {@link ABI_VERSION}.
 *
 * @param found - the library's `umfa_abi_version()`
 * @param path - where it was loaded from
 * @param binding - the binding's package name, for the message
 * @throws UmfaLoadError on a mismatch
 */
export function checkAbiVersion(found: number, path: string, binding: string, versionString?: string): void {
  if (found !== ABI_VERSION) {
    throw new UmfaLoadError(
      `${path}${versionString ? ` (umfa ${versionString})` : ''} implements umfa ABI version ${found}, ` +
        `but ${binding} targets ABI version ${ABI_VERSION}; refusing to use it. ` +
        `Install a matching library (the ${platformPackageName()} package of the same release) or point UMFA_LIB_DIR at one.`,
    );
  }
}

/**
 * Refuses a library that lacks entry points the binding calls (a library of the right ABI version
 * always has them; a damaged or foreign one may not).
 *
 * @param path - where it was loaded from
 * @param missing - the names of the entry points not found
 * @throws UmfaLoadError naming every missing entry point
 */
export function checkEntryPoints(path: string, missing: readonly string[]): void {
  if (missing.length > 0) throw new UmfaLoadError(`${path} lacks entry points: ${missing.join(', ')}`);
}
