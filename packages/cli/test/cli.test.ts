// The CLI driven as a subprocess: help texts, --version, usage errors and exit codes, colour rules.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { bin, cliRoot, haveLibrary, umfa } from './helpers.js';

const version = (JSON.parse(readFileSync(join(cliRoot, 'package.json'), 'utf8')) as { version: string }).version;

describe('help and version', () => {
  test('--version prints the package version', () => {
    for (const flag of ['--version', '-V']) {
      const r = umfa([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(version);
      expect(r.stderr).toBe('');
    }
  });

  test('--help lists every command', () => {
    const r = umfa(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['info', 'bench', 'check']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    expect(r.stdout).toContain('Exit codes: 0 success, 1 failure, 2 usage error');
    expect(r.stdout).toContain('NO_COLOR');
  });

  test.each(['info', 'bench', 'check'])('--help, -h and help for %s', (cmd) => {
    const a = umfa([cmd, '--help']);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(new RegExp(`^umfa ${cmd} — `));
    expect(a.stdout).toContain('Usage:');
    expect(a.stdout).toMatch(/-h, --help/);
    expect(umfa([cmd, '-h']).stdout).toBe(a.stdout);
    expect(umfa(['help', cmd]).stdout).toBe(a.stdout);
  });

  test('bench --help documents every grid flag', () => {
    const help = umfa(['bench', '--help']).stdout;
    for (const flag of ['--batch', '--heads', '--kv-heads', '--seqlen', '--seqlen-k', '--head-dim', '--dtype', '--causal', '--backend', '--device', '--direction', '--reps', '--warmup', '--threads', '--json', '--plot', '--quick']) {
      expect(help).toContain(flag);
    }
  });

  test('check --help documents --manifest', () => {
    expect(umfa(['check', '--help']).stdout).toContain('--manifest PATH');
  });
});

describe('usage errors exit with 2 and explain on stderr', () => {
  test.each([
    [[], /Usage:/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--frobnicate'], /unknown option "--frobnicate"/],
    [['bench', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['bench', '--dtype', 'f64'], /--dtype must be one of f32, f16, bf16; got "f64"/],
    [['bench', '--seqlen', 'lots'], /--seqlen must be an integer, got "lots"/],
    [['bench', '--reps', '0'], /--reps must be >= 1/],
    [['bench', '--heads', '8', '--kv-heads', '3'], /--kv-heads 3 does not divide --heads 8/],
    [['bench', '--backend', 'tpu'], /--backend must be one of cpu, cuda, metal, auto/],
    [['bench', '--plot', 'out.png'], /--plot needs a file name ending in \.svg/],
    [['bench', '--quick', '--dtype', 'f16'], /--quick runs a fixed set of shapes; drop --dtype/],
    [['check', '--manifest', '/nonexistent/manifest.json'], /does not exist/],
    [['info', 'extra'], /Unexpected argument 'extra'/],
    [['help', 'nope'], /unknown command "nope"/],
  ])('umfa %j', (args, message) => {
    const r = umfa(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  test('the hint names the command', () => {
    expect(umfa(['bench', '--dtype', 'x']).stderr).toContain("Run 'umfa bench --help' for usage.");
  });
});

test.skipIf(!haveLibrary)('a closed pipe ends quietly (no EPIPE trace)', () => {
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} check --filter mask | head -n 1`;
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', env: { ...process.env, UMFA_NUM_THREADS: '2' } });
  expect(r.stdout).toMatch(/^conformance: /);
  expect(r.stderr).not.toContain('EPIPE');
});

describe('colour', () => {
  const esc = '\u001b[';
  test('none when output is not a terminal', () => {
    expect(umfa(['--help']).stdout).not.toContain(esc);
    expect(umfa(['bench', '--dtype', 'x']).stderr).not.toContain(esc);
  });
  test('FORCE_COLOR turns it on, NO_COLOR and --no-color win', () => {
    expect(umfa(['bench', '--dtype', 'x'], { FORCE_COLOR: '1' }).stderr).toContain(esc);
    expect(umfa(['bench', '--dtype', 'x'], { FORCE_COLOR: '1', NO_COLOR: '1' }).stderr).not.toContain(esc);
    expect(umfa(['bench', '--dtype', 'x', '--no-color'], { FORCE_COLOR: '1' }).stderr).not.toContain(esc);
  });
});

describe.skipIf(!haveLibrary)('info', () => {
  test('prints versions, library path, backends, CPU', () => {
    const r = umfa(['info']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^umfa\s+\d+\.\d+\.\d+ \(ABI \d+\)$/m);
    expect(r.stdout).toMatch(/^library\s+\/.*libumfa/m);
    expect(r.stdout).toMatch(/^build\s+\S/m);
    expect(r.stdout).toMatch(/^\s+cpu\s+available\s+1 device, \d+ threads?$/m);
    expect(r.stdout).toMatch(/^\s+cuda\s+/m);
    expect(r.stdout).toMatch(/^simd\s+/m);
  });

  test('--json', () => {
    const r = umfa(['info', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(info.abiVersion).toBe(info.bindingAbiVersion);
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.backends).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'cpu', available: true, deviceCount: 1 })]));
    expect((info.cpu as { threads: number }).threads).toBeGreaterThan(0);
  });

  test('lists the Metal backend and why it is absent off Apple platforms', () => {
    const env = { UMFA_METAL_LIB: '' };
    const r = umfa(['info'], env);
    expect(r.code).toBe(0);
    if (process.platform === 'darwin') return; // a Mac reports its own GPU
    expect(r.stdout).toMatch(/^\s+metal\s+unavailable\s+0 devices \(absent: Metal exists only on Apple platforms/m);
    const info = JSON.parse(umfa(['info', '--json'], env).stdout) as { metal: { available: boolean; state: string } };
    expect(info.metal.available).toBe(false);
    expect(info.metal.state).toContain('UMFA_METAL_LIB');
  });

  test('UMFA_NUM_THREADS shows in the thread count', () => {
    const info = JSON.parse(umfa(['info', '--json'], { UMFA_NUM_THREADS: '1' }).stdout) as { cpu: { threads: number } };
    expect(info.cpu.threads).toBe(1);
  });

  test('a library that cannot be loaded is an error (exit 1) naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'umfa-badlib-'));
    writeFileSync(join(dir, 'libumfa.so.1'), 'not a shared library');
    writeFileSync(join(dir, 'libumfa.so'), 'not a shared library');
    const r = umfa(['info'], { UMFA_LIB_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^umfa: error: /);
    expect(r.stderr).toContain(dir);
  });
});
