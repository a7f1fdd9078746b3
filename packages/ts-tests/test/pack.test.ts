// Packs @umfa/api, @umfa/native-linux-x64-gnu, @umfa/koffi and @umfa/napi with `pnpm pack`,
// installs the tarballs into a fresh project outside the monorepo with npm (only third-party
// dependencies such as koffi come from the registry), and computes attention through each
// binding there. Nothing from the monorepo is reachable: UMFA_LIB_DIR is unset and the project
// lives in the system temp folder.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const packagesDir = resolve(here, '..', '..');
const repoRoot = resolve(packagesDir, '..');
const packages = ['api', 'native-linux-x64-gnu', 'ts-koffi', 'ts-napi'];
const work = mkdtempSync(join(tmpdir(), 'umfa-pack-'));
const keep = process.env['UMFA_KEEP_PACK_DIR'] === '1';

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'UMFA_LIB_DIR' || k === 'NODE_PATH' || k.startsWith('npm_') || k.startsWith('PNPM_') || k === 'UMFA_TS_BINDING') continue;
    env[k] = v;
  }
  return env;
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

  it('packs, installs with npm and with pnpm, and computes attention through both bindings', () => {
    const tarballs = join(work, 'tarballs');
    for (const p of packages) {
      execFileSync('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(packagesDir, p),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
    }
    const files = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
    expect(files.length).toBe(4);
    const napiContents = execFileSync('tar', ['-tzf', join(tarballs, files.find((f) => f.includes('napi'))!)], { encoding: 'utf8' });
    expect(napiContents).toContain('package/prebuilds/linux-x64/umfa_napi.node');
    const nativeContents = execFileSync('tar', ['-tzf', join(tarballs, files.find((f) => f.includes('native'))!)], { encoding: 'utf8' });
    expect(nativeContents).toContain('package/lib/libumfa.so.1');

    const deps: Record<string, string> = {};
    for (const f of files) {
      const name = f.replace(/-\d+\.\d+\.\d+.*\.tgz$/, '').replace(/^umfa-/, '@umfa/');
      deps[name] = `file:${join(tarballs, f)}`;
    }
    // npm: the four tarballs as dependencies (the bindings' own @umfa dependencies dedupe onto
    // them). pnpm: the bindings only, with overrides pointing every @umfa package at its tarball.
    const installs: [string, string[], Record<string, unknown>][] = [
      ['npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { dependencies: deps }],
      [
        'pnpm',
        ['install', '--no-frozen-lockfile', '--reporter=silent'],
        {
          dependencies: { '@umfa/koffi': deps['@umfa/koffi'], '@umfa/napi': deps['@umfa/napi'] },
          pnpm: { overrides: deps },
        },
      ],
    ];
    for (const [tool, args, manifest] of installs) {
      const app = join(work, `app-${tool}`);
      execFileSync('mkdir', ['-p', app]);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `umfa-pack-check-${tool}`, private: true, type: 'module', ...manifest }, null, 2));
      writeFileSync(join(app, 'use.mjs'), useScript);
      execFileSync(tool, args, { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
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
