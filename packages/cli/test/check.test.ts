// `umfa check` over the conformance vectors, and over a corrupted copy of them.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { cliRoot, haveLibrary, haveVectors, manifest, umfa } from './helpers.js';

describe.skipIf(!haveLibrary || !haveVectors)('check', () => {
  test('every vector passes through @umfa/koffi', () => {
    const r = umfa(['check', '--manifest', manifest]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const total = (JSON.parse(readFileSync(manifest, 'utf8')) as { cases: unknown[] }).cases.length;
    expect(r.stdout).toMatch(new RegExp(`^${total} passed, 0 failed$`, 'm'));
    expect(r.stdout).toMatch(/^case\s+dtype\s+out err\s+lse err\s+grad err\s+result/m);
  });

  test('finds the repository manifest by itself, from any working directory inside it', () => {
    const r = umfa(['check', '--filter', 'basic'], {}, dirname(manifest));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`conformance: ${manifest}`);
    expect(r.stdout).toMatch(/^[1-9]\d* passed, 0 failed$/m);
  });

  test('--json, --filter and --skip', () => {
    const r = umfa(['check', '--manifest', manifest, '--filter', 'gqa', '--skip', 'gqa_basic', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { passed: number; failed: number; skipped: number; cases: { id: string; outcome: string; tags: string[] }[] };
    expect(j.failed).toBe(0);
    expect(j.cases.every((c) => c.id.includes('gqa') || c.tags.some((t) => t.includes('gqa')))).toBe(true);
    const skipped = j.cases.filter((c) => c.outcome === 'skip').map((c) => c.id);
    expect(skipped).toEqual(j.cases.some((c) => c.id === 'gqa_basic') ? ['gqa_basic'] : []);
  });

  describe('a corrupted copy of the vectors', () => {
    let dir: string;
    let first: { id: string; expected: Record<string, { file: string }> };
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'umfa-vectors-'));
      cpSync(dirname(manifest), dir, { recursive: true, filter: (src) => !src.includes('__pycache__') });
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { cases: (typeof first)[] };
      first = m.cases.find((c) => c.expected?.out)!;
    });

    test('a changed expected value fails the case, exit code 1', () => {
      const file = join(dir, first.expected.out!.file);
      const bytes = readFileSync(file);
      const dataStart = bytes.length - 4 * 8; // the last 8 float32 values
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = dataStart; i < bytes.length; i += 4) view.setFloat32(i, view.getFloat32(i, true) + 0.5, true);
      writeFileSync(file, bytes);
      const r = umfa(['check', '--manifest', join(dir, 'manifest.json')]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^${first.id}\\s.*FAIL\\s+out: 8 elements off`, 'm'));
      expect(r.stdout).toMatch(/^\d+ passed, 1 failed$/m);
      expect(r.stderr).toContain('1 of');
      const j = JSON.parse(umfa(['check', '--manifest', join(dir, 'manifest.json'), '--json', '--filter', first.id]).stdout) as { cases: { id: string; outcome: string; mismatches: Record<string, number> }[] };
      expect(j.cases.find((c) => c.id === first.id)).toMatchObject({ outcome: 'fail', mismatches: { out: 8 } });
    });

    test('a truncated vector is an error for that case, exit code 1', () => {
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { cases: { id: string; inputs: Record<string, { file: string }> }[] };
      const victim = m.cases.at(-1)!;
      const file = join(dir, victim.inputs.q!.file);
      writeFileSync(file, readFileSync(file).subarray(0, 140));
      const r = umfa(['check', '--manifest', join(dir, 'manifest.json'), '--failures']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^${victim.id}\\s.*ERROR\\s+.*truncated`, 'm'));
      expect(r.stdout).not.toMatch(/\spass\s/); // --failures lists only the others
    });

    test('a manifest that is not JSON is a failure', () => {
      const bad = join(dir, 'broken.json');
      writeFileSync(bad, '{ nope');
      const r = umfa(['check', '--manifest', bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot read .*broken\.json/);
    });
  });
});

// From an install: the CLI outside any checkout finds no repository manifest and runs the
// compact set of vectors its package ships (scripts/bundle-vectors.mjs, run by the build).
describe.skipIf(!haveLibrary)('check from an install', () => {
  test('runs the vectors shipped with the package, from a folder outside the repository', () => {
    const bundled = join(cliRoot, 'vectors', 'manifest.json');
    expect(existsSync(bundled), 'the build bundles vectors/ (node scripts/bundle-vectors.mjs)').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'umfa-cli-install-'));
    try {
      // The package as npm installs it: its `files`, and @umfa/koffi resolvable from it.
      const pkgDir = join(dir, 'node_modules', '@umfa', 'cli');
      for (const f of ['package.json', 'bin', 'dist', 'vectors']) cpSync(join(cliRoot, f), join(pkgDir, f), { recursive: true });
      symlinkSync(join(cliRoot, '..', 'ts-koffi'), join(dir, 'node_modules', '@umfa', 'koffi'), 'dir');
      const r = spawnSync(process.execPath, [join(pkgDir, 'bin', 'umfa.js'), 'check'], { cwd: dir, encoding: 'utf8', env: { ...process.env, UMFA_NUM_THREADS: '2', UMFA_CONFORMANCE_MANIFEST: '' }, timeout: 300_000 });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`conformance: ${join(pkgDir, 'vectors', 'manifest.json')}`);
      const total = (JSON.parse(readFileSync(bundled, 'utf8')) as { cases: unknown[] }).cases.length;
      expect(total).toBeGreaterThan(50);
      expect(r.stdout).toMatch(new RegExp(`^${total} passed, 0 failed$`, 'm'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
