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
}

/** `"linux-x64"`, `"darwin-arm64"`, ...: the folder name under `dist/native/`. */
export function platformDir(): string {
  return `${process.platform}-${process.arch}`;
}

function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return !report?.header?.glibcVersionRuntime;
}

/**
 * The name of the per-platform package carrying the native library, e.g.
 * `@umfa/native-linux-x64-gnu`.
 */
export function platformPackageName(): string {
  const libc = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : '';
  return `@umfa/native-${process.platform}-${process.arch}${libc}`;
}

/** File names of the shared library on this platform, most specific first. */
export function libraryFileNames(): string[] {
  switch (process.platform) {
    case 'darwin':
      return [`libumfa.${ABI_VERSION}.dylib`, 'libumfa.dylib'];
    case 'win32':
      return ['umfa.dll'];
    default:
      return [`libumfa.so.${ABI_VERSION}`, 'libumfa.so'];
  }
}

function findIn(dir: string, tried: string[], label: string): string | undefined {
  for (const name of libraryFileNames()) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  tried.push(`${label}: ${join(dir, libraryFileNames()[0] as string)} (not found)`);
  return undefined;
}

/**
 * Finds the umfa shared library, trying in order:
 * 1. `$UMFA_LIB_DIR` when set;
 * 2. a workspace build: the nearest ancestor folder of the binding that holds `include/umfa.h`
 *    and `dist/native/<platform>/lib/`;
 * 3. the per-platform package (see {@link platformPackageName}), an optional dependency.
 *
 * @throws UmfaLoadError listing every location tried when none has the library
 */
export function findNativeLibrary(options: FindLibraryOptions): FoundLibrary {
  const env = options.env ?? process.env;
  const tried: string[] = [];
  const envDir = env['UMFA_LIB_DIR'];
  if (envDir) {
    const p = findIn(envDir, tried, 'UMFA_LIB_DIR');
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
    const libDir = join(workspace, 'dist', 'native', platformDir(), 'lib');
    const p = findIn(libDir, tried, 'workspace build');
    if (p) return { path: p, source: 'workspace', tried: [...tried, `workspace build: ${p}`] };
  } else {
    tried.push(`workspace build: no umfa workspace above ${start}`);
  }

  const pkg = platformPackageName();
  try {
    const require = createRequire(options.from);
    const pkgJson = require.resolve(`${pkg}/package.json`);
    const p = findIn(join(dirname(pkgJson), 'lib'), tried, `package ${pkg}`);
    if (p) return { path: p, source: 'platform-package', tried: [...tried, `package ${pkg}: ${p}`] };
  } catch {
    tried.push(`package ${pkg}: not installed`);
  }
  throw new UmfaLoadError(
    `cannot find the umfa native library (${libraryFileNames().join(' or ')}) for ${platformDir()}. ` +
      `Install ${pkg}, build the core (dist/native), or set UMFA_LIB_DIR to a folder holding it.`,
    tried,
  );
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
