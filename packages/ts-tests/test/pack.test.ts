// Packs @umfa/api, the per-platform native packages, @umfa/koffi and @umfa/napi with `pnpm pack`,
// installs the tarballs into a fresh project outside the monorepo with npm and with pnpm (only
// third-party dependencies such as koffi come from the registry), and computes attention through
// each binding there. Nothing from the monorepo is reachable: UMFA_LIB_DIR is unset and the
// project lives in the system temp folder.
//
// The bindings list every platform package as an optional dependency. All the tarballs are served
// by a small local registry for the @umfa scope (test/local-registry.mjs), so npm and pnpm resolve
// them as a user's install resolves them from the public registry, read each platform package's
// os/cpu/libc and install only this machine's (linux-x64-gnu); the test checks that the others
// were resolved and then skipped by that filter, not dropped by a failed download. A platform package whose library this machine has (dist/native/<platform>/,
// from `bash scripts/build-native.sh <platform>`) is packed for real; one it has not (darwin
// always; linux-arm64 and win32-x64 before they are built) is offered as a stand-in tarball with
// the same package.json and a text file where the library would be, which must never be installed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const packagesDir = resolve(here, '..', '..');
const repoRoot = resolve(packagesDir, '..');
const packages = ['api', 'native-linux-x64-gnu', 'ts-koffi', 'ts-napi'];
/** The platform packages this machine (linux-x64, glibc) must not install. */
const otherPlatforms = ['native-linux-arm64-gnu', 'native-win32-x64', 'native-darwin-arm64', 'native-darwin-x64'];
const work = mkdtempSync(join(tmpdir(), 'umfa-pack-'));
const keep = process.env['UMFA_KEEP_PACK_DIR'] === '1';

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'UMFA_LIB_DIR' || k === 'UMFA_NATIVE_DIR' || k === 'NODE_PATH' || k.startsWith('npm_') || k.startsWith('PNPM_') || k === 'UMFA_TS_BINDING') continue;
    env[k] = v;
  }
  return env;
}

function integrityOf(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** Packs a platform package of another platform: for real when its library is built, else a stand-in. */
function packOtherPlatform(name: string, tarballs: string): 'real' | 'stand-in' {
  const dir = join(packagesDir, name);
  const real = spawnSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: dir, env: cleanEnv(), encoding: 'utf8' });
  if (real.status === 0) {
    // The tarball carries its platform's library (the package's .npmignore keeps lib/ in).
    const tgz = readdirSync(tarballs).find((f) => f.startsWith(`umfa-${name}-`))!;
    const lib = { 'native-linux-arm64-gnu': 'libumfa.so.1', 'native-win32-x64': 'umfa.dll' }[name] ?? 'libumfa.1.dylib';
    expect(execFileSync('tar', ['-tzf', join(tarballs, tgz)], { encoding: 'utf8' })).toContain(`package/lib/${lib}`);
    return 'real';
  }
  // Absent library: pnpm pack must have refused (no tarball), saying why.
  expect(real.stderr + real.stdout).toContain('Refusing to pack a package without its library');
  const copy = join(work, 'stand-ins', name);
  mkdirSync(join(copy, 'lib'), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  delete manifest['scripts'];
  delete manifest['nx'];
  writeFileSync(join(copy, 'package.json'), JSON.stringify(manifest, null, 2));
  for (const f of ['index.js', 'index.d.ts', 'README.md']) cpSync(join(dir, f), join(copy, f));
  writeFileSync(join(copy, 'lib', 'STAND-IN.txt'), 'stand-in for a library this machine did not build; must never be installed\n');
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', tarballs], { cwd: copy, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  return 'stand-in';
}

const useScript = `
import * as koffiBinding from '@umfa/koffi';
import * as napiBinding from '@umfa/napi';

const [B, N, H, D] = [1, 5, 2, 8];
const values = Float32Array.from({ length: B * N * H * D }, (_, i) => Math.sin(i * 0.37));
// Reference: softmax(q k^T / sqrt(D)) v per head, in float64.
function reference() {
  const out = new Float64Array(values.length);
  const at = (s, h, d) => values[(s * H + h) * D + d];
  for (let h = 0; h < H; h++)
    for (let i = 0; i < N; i++) {
      const scores = [];
      for (let j = 0; j < N; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += at(i, h, d) * at(j, h, d);
        scores.push(dot / Math.sqrt(D));
      }
      const m = Math.max(...scores);
      const w = scores.map((s) => Math.exp(s - m));
      const z = w.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < N; j++) acc += (w[j] / z) * at(j, h, d);
        out[(i * H + h) * D + d] = acc;
      }
    }
  return out;
}
const ref = reference();
for (const [name, u] of [['koffi', koffiBinding], ['napi', napiBinding]]) {
  const q = u.bshd(values, [B, N, H, D]);
  const { out } = u.attention(q, q, q);
  const asyncOut = (await u.attentionAsync(q, q, q)).out;
  let err = 0;
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(out.data[i] - ref[i]), Math.abs(asyncOut.data[i] - ref[i]));
  console.log(JSON.stringify({ binding: name, version: u.version(), abi: u.abiVersion(), library: u.libraryPath(), maxError: err }));
}
// Where everything came from: the modules this script resolved, and every shared object the
// process has loaded (libumfa, the N-API addon, koffi's own addon).
const { createRequire } = await import('node:module');
const { fileURLToPath } = await import('node:url');
const modules = [];
for (const binding of ['@umfa/koffi', '@umfa/napi']) {
  const entry = import.meta.resolve(binding);
  const from = createRequire(entry);
  modules.push(fileURLToPath(entry), from.resolve('@umfa/api'), from.resolve('@umfa/native-linux-x64-gnu'));
  if (binding === '@umfa/koffi') modules.push(from.resolve('koffi'));
}
const sharedObjects = process.report.getReport().sharedObjects;
console.log(JSON.stringify({ modules, sharedObjects }));
`;

describe('packed tarballs install and run outside the monorepo', () => {
  afterAll(() => {
    if (!keep) rmSync(work, { recursive: true, force: true });
  });

  it('refuses to pack a platform package without its library', () => {
    const empty = join(work, 'empty-install');
    mkdirSync(empty, { recursive: true });
    const dest = join(work, 'refused');
    const r = spawnSync('pnpm', ['pack', '--pack-destination', dest], {
      cwd: join(packagesDir, 'native-linux-x64-gnu'),
      env: { ...cleanEnv(), UMFA_NATIVE_DIR: empty },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('@umfa/native-linux-x64-gnu: no library for linux-x64');
    expect(r.stderr + r.stdout).toContain('Refusing to pack a package without its library');
    expect(existsSync(dest) ? readdirSync(dest).filter((f) => f.endsWith('.tgz')) : []).toEqual([]);
    // The refused run emptied lib/; the next pack (below) copies the library again.
    // A library of another CPU is refused too (this machine's x64 build offered to the arm64 package).
    const wrong = spawnSync('pnpm', ['pack', '--pack-destination', dest], {
      cwd: join(packagesDir, 'native-linux-arm64-gnu'),
      env: { ...cleanEnv(), UMFA_NATIVE_DIR: join(repoRoot, 'dist', 'native', 'linux-x64') },
      encoding: 'utf8',
    });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr + wrong.stdout).toMatch(/libumfa\.so\.1 is built for linux-x64, not linux-arm64/);
    expect(existsSync(dest) ? readdirSync(dest).filter((f) => f.endsWith('.tgz')) : []).toEqual([]);
  });

  it('packs, installs with npm and with pnpm, skips the other platforms\' packages, and computes attention through both bindings', async () => {
    const tarballs = join(work, 'tarballs');
    for (const p of packages) {
      execFileSync('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(packagesDir, p),
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
    }
    const kinds: Record<string, string> = {};
    for (const p of otherPlatforms) kinds[p] = packOtherPlatform(p, tarballs);
    console.log(`other platforms' packages: ${JSON.stringify(kinds)}`);
    const files = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
    expect(files.length).toBe(8);
    const napiContents = execFileSync('tar', ['-tzf', join(tarballs, files.find((f) => f.includes('napi'))!)], { encoding: 'utf8' });
    expect(napiContents).toContain('package/prebuilds/linux-x64/umfa_napi.node');
    const nativeContents = execFileSync('tar', ['-tzf', join(tarballs, files.find((f) => f.includes('native-linux-x64-gnu'))!)], { encoding: 'utf8' });
    expect(nativeContents).toContain('package/lib/libumfa.so.1');
    // The packed bindings name every platform package, at this release's version.
    for (const b of ['koffi', 'napi']) {
      const tgz = join(tarballs, files.find((f) => f.startsWith(`umfa-${b}-`))!);
      const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' })) as { version: string; optionalDependencies: Record<string, string> };
      expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(['native-darwin-arm64', 'native-darwin-x64', 'native-linux-arm64-gnu', 'native-linux-x64-gnu', 'native-win32-x64'].map((n) => `@umfa/${n}`));
      for (const v of Object.values(manifest.optionalDependencies)) expect(v).toBe(manifest.version);
    }

    // The tarballs are served by a local registry for the @umfa scope: npm and pnpm resolve the
    // bindings' optional dependencies as from the public registry, reading each platform
    // package's os/cpu/libc from its packument.
    const registry = spawn(process.execPath, [join(here, 'local-registry.mjs'), tarballs], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolvePort, reject) => {
        registry.once('error', reject);
        registry.once('exit', (code) => reject(new Error(`local registry exited with ${code}`)));
        registry.stdout.once('data', (chunk: Buffer) => resolvePort((JSON.parse(chunk.toString()) as { port: number }).port));
      });
      const npmrc = `@umfa:registry=http://127.0.0.1:${port}/\n`;
      const bindings = { '@umfa/koffi': '0.1.0', '@umfa/napi': '0.1.0' };
      const installs: [string, string[]][] = [
        ['npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']],
        ['pnpm', ['install', '--no-frozen-lockfile', '--reporter=silent']],
      ];
      for (const [tool, args] of installs) {
        const app = join(work, `app-${tool}`);
        mkdirSync(app, { recursive: true });
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `umfa-pack-check-${tool}`, private: true, type: 'module', dependencies: bindings }, null, 2));
        writeFileSync(join(app, '.npmrc'), npmrc);
        writeFileSync(join(app, 'use.mjs'), useScript);
        execFileSync(tool, args, { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
        checkInstall(tool, app, tarballs);
        runUse(tool, app);
        runQuickstart(tool, app);
      }
    } finally {
      registry.kill();
    }
  });

  /** This platform's package is installed; the others were resolved (the lockfile has them, with
   * their os/cpu fields) and skipped by the platform filter. */
  function checkInstall(tool: string, app: string, tarballs: string): void {
    const installed = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
    if (tool === 'npm') {
      expect(existsSync(join(app, 'node_modules', '@umfa', 'native-linux-x64-gnu', 'lib', 'libumfa.so.1'))).toBe(true);
      const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { optional?: boolean; os?: string[]; cpu?: string[]; integrity?: string }> };
      for (const p of otherPlatforms) {
        expect(installed(join(app, 'node_modules', '@umfa')), p).not.toContain(p);
        const entry = lock.packages[`node_modules/@umfa/${p}`];
        expect(entry, `${p} in package-lock.json`).toBeDefined();
        expect(entry!.optional).toBe(true);
        // Resolved from this run's tarball (its integrity), then not installed.
        expect(entry!.integrity).toBe(integrityOf(join(tarballs, `umfa-${p}-0.1.0.tgz`)));
        expect((entry!.os ?? []).length + (entry!.cpu ?? []).length).toBeGreaterThan(0);
      }
    } else {
      const store = installed(join(app, 'node_modules', '.pnpm'));
      const modulesYaml = readFileSync(join(app, 'node_modules', '.modules.yaml'), 'utf8');
      const lock = readFileSync(join(app, 'pnpm-lock.yaml'), 'utf8');
      for (const p of otherPlatforms) {
        expect(store.filter((d) => d.startsWith(`@umfa+${p}@`)), p).toEqual([]);
        expect(lock, `${p} in pnpm-lock.yaml`).toContain(`'@umfa/${p}@0.1.0'`);
        expect(modulesYaml, `${p} in .modules.yaml's skipped list`).toContain(`"@umfa/${p}@0.1.0"`);
      }
      const own = store.filter((d) => d.startsWith('@umfa+native-linux-x64-gnu@'));
      expect(own.length).toBe(1);
      expect(existsSync(join(app, 'node_modules', '.pnpm', own[0]!, 'node_modules', '@umfa', 'native-linux-x64-gnu', 'lib', 'libumfa.so.1'))).toBe(true);
    }
  }

  /** The docs' getting-started code (docs/home.md shows these files), copied verbatim into the
   * fresh project and run as a user would: ESM and CommonJS. */
  function runQuickstart(tool: string, app: string): void {
    const expected: [string, RegExp][] = [
      ['koffi.mjs', /^umfa \d+\.\d+\.\d+: out 1×64×4×32, lse 1×4×64\nout\[0, 0, 0, :4\] = 0\.0000 0\.1429 0\.2857 0\.4286$/],
      ['koffi.cjs', /^out 1×64×4×32 Float32Array$/],
    ];
    for (const [file, want] of expected) {
      cpSync(join(repoRoot, 'docs', 'examples', 'quickstart', file), join(app, file));
      const output = execFileSync(process.execPath, [file], { cwd: app, env: cleanEnv(), encoding: 'utf8' });
      expect(output.trim(), `${tool} ${file}`).toMatch(want);
      console.log(`${tool} ${file}:\n${output.trim()}`);
    }
  }

  function runUse(tool: string, app: string): void {
    const output = execFileSync(process.execPath, ['use.mjs'], { cwd: app, env: cleanEnv(), encoding: 'utf8' });
    const all = output.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const origins = all.pop() as { modules: string[]; sharedObjects: string[] };
    const lines = all as unknown as { binding: string; library: string; maxError: number; abi: number }[];
    expect(lines.map((l) => l.binding)).toEqual(['koffi', 'napi']);
    // Nothing came from the monorepo: every module resolved inside the fresh project, and no
    // shared object was loaded from the repository (libumfa, the addon and koffi's addon all
    // from the project's node_modules).
    expect(origins.modules.length).toBe(7);
    for (const m of origins.modules) expect(m.startsWith(app), m).toBe(true);
    expect(origins.sharedObjects.filter((so) => so.startsWith(repoRoot))).toEqual([]);
    for (const want of [/libumfa\.so\.1$/, /umfa_napi\.node$/, /koffi.*\.node$/]) {
      const found = origins.sharedObjects.filter((so) => want.test(so));
      expect(found.length, String(want)).toBeGreaterThan(0);
      for (const so of found) expect(so.startsWith(app), so).toBe(true);
    }
    for (const l of lines) {
      // Loaded from the platform package inside this project (pnpm resolves its symlinks).
      expect(l.library.startsWith(app)).toBe(true);
      expect(l.library).toMatch(/native-linux-x64-gnu.*\/lib\/libumfa\.so\.1$/);
      expect(l.maxError).toBeLessThan(1e-5);
      expect(l.abi).toBe(1);
    }
    console.log(`${tool}:\n${output.trim()}`);
  }

  // A user whose optional dependency was not installed (npm --omit=optional) gets the error that
  // names the platform and the two ways out. On a platform that has a package the bindings load
  // the library on first use (see createBinding), so the error comes from the first call.
  it('without the platform package: the error names the platform and the two ways out', () => {
    const app = join(work, 'app-npm');
    const moved = join(work, 'moved-native');
    const pkg = join(app, 'node_modules', '@umfa', 'native-linux-x64-gnu');
    cpSync(pkg, moved, { recursive: true });
    rmSync(pkg, { recursive: true, force: true });
    try {
      const script = "import * as u from '@umfa/koffi'; try { u.version(); console.log('LOADED'); } catch (e) { console.log(e.name + ': ' + e.message); }";
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: cleanEnv(), encoding: 'utf8' });
      expect(out).not.toContain('LOADED');
      expect(out).toContain('UmfaLoadError');
      expect(out).toContain('for linux-x64 (glibc)');
      expect(out).toContain('optional dependency @umfa/native-linux-x64-gnu, which was not installed');
      expect(out).toContain('bash scripts/build-native.sh linux-x64');
      expect(out).toContain('UMFA_LIB_DIR=');
    } finally {
      cpSync(moved, pkg, { recursive: true });
    }
  });

  // Platforms without a prebuilt addon build it at install time from the packed sources
  // (native/, binding.gyp, the copied header): everything that build needs must be in the
  // tarball or a dependency. Simulated here by removing the prebuild from the npm project.
  it('builds the N-API addon from the packed sources when there is no prebuild', () => {
    const app = join(work, 'app-npm');
    const napiDir = join(app, 'node_modules', '@umfa', 'napi');
    rmSync(join(napiDir, 'prebuilds'), { recursive: true, force: true });
    execFileSync(process.execPath, [join(napiDir, 'scripts', 'install.mjs')], { cwd: napiDir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const output = execFileSync(process.execPath, ['use.mjs'], { cwd: app, env: cleanEnv(), encoding: 'utf8' });
    const all = output.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const origins = all.pop() as { sharedObjects: string[] };
    const napi = all.find((l) => l['binding'] === 'napi') as { maxError: number };
    expect(napi.maxError).toBeLessThan(1e-5);
    expect(origins.sharedObjects).toContain(join(napiDir, 'build', 'Release', 'umfa_napi.node'));
  });
});
