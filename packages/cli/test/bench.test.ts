// `umfa bench`: the JSON schema, FLOP accounting, the SVG plot, --quick, errors from the core.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { mockCudaLibrary } from '../../ts-tests/mock-cuda/build.js';
import { bin, cliRoot, haveLibrary, umfa, validate } from './helpers.js';

const schema = JSON.parse(readFileSync(join(cliRoot, 'schema', 'bench.schema.json'), 'utf8')) as Record<string, unknown>;

interface Result {
  direction: string;
  dtype: string;
  batch: number;
  heads: number;
  kvHeads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  causal: boolean;
  flops: number;
  gflops: number;
  tflops: number;
  memoryBytes: number;
  ms: { median: number; min: number; max: number };
  check?: { passed: boolean; maxAbsError: number };
}

describe.skipIf(!haveLibrary)('bench', () => {
  const small = ['--seqlen', '32,64', '--heads', '2', '--head-dim', '16', '--reps', '2', '--warmup', '0'];

  test('--json matches the documented schema, for every direction and dtype', () => {
    const r = umfa(['bench', ...small, '--dtype', 'f32,bf16', '--direction', 'both', '--kv-heads', '1', '--causal', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(''); // no progress bar without a terminal
    const report = JSON.parse(r.stdout) as { schema: string; meta: Record<string, unknown>; results: Result[] };
    expect(validate(schema, report)).toEqual([]);
    expect(report.results).toHaveLength(2 * 2 * 2); // seqlens × dtypes × directions
    expect(report.meta.command).toBe(`umfa bench ${[...small, '--dtype', 'f32,bf16', '--direction', 'both', '--kv-heads', '1', '--causal', '--json'].join(' ')}`);
    expect(report.meta.backend).toBe('cpu');
    expect(report.meta.threads).toBe(2);
  });

  test('FLOPs follow FlashAttention: 4·B·H·Nq·Nk·D, halved when causal, backward 2.5×', () => {
    const r = umfa(['bench', '--batch', '2', '--heads', '4', '--kv-heads', '2', '--seqlen', '64', '--seqlen-k', '96', '--head-dim', '32', '--direction', 'both', '--reps', '1', '--warmup', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [fwd, bwd] = (JSON.parse(r.stdout) as { results: Result[] }).results;
    expect(fwd!.flops).toBe(4 * 2 * 4 * 64 * 96 * 32);
    expect(bwd!.flops).toBe(2.5 * fwd!.flops);
    for (const x of [fwd!, bwd!]) {
      expect(x.gflops).toBeCloseTo(x.flops / (x.ms.median / 1e3) / 1e9, 6);
      expect(x.tflops).toBeCloseTo(x.gflops / 1e3, 9);
      expect(x.ms.min).toBeLessThanOrEqual(x.ms.median);
      expect(x.ms.median).toBeLessThanOrEqual(x.ms.max);
    }
    // q, k, v, out (f32) + lse forward; backward adds dout, dq, dk, dv
    const q = 2 * 64 * 4 * 32 * 4;
    const kv = 2 * 96 * 2 * 32 * 4;
    const lse = 2 * 4 * 64 * 4;
    expect(fwd!.memoryBytes).toBe(2 * q + 2 * kv + lse);
    expect(bwd!.memoryBytes).toBe(4 * q + 4 * kv + lse);
    const causal = JSON.parse(umfa(['bench', '--seqlen', '64', '--heads', '1', '--head-dim', '16', '--causal', '--reps', '1', '--json']).stdout) as { results: Result[] };
    expect(causal.results[0]!.flops).toBe((4 * 64 * 64 * 16) / 2);
  });

  test('ranges double: --seqlen 32..256', () => {
    const r = umfa(['bench', '--seqlen', '32..256', '--heads', '1', '--head-dim', '8', '--reps', '1', '--warmup', '0', '--json']);
    expect((JSON.parse(r.stdout) as { results: Result[] }).results.map((x) => x.seqlenQ)).toEqual([32, 64, 128, 256]);
  });

  test('the table shows ms, throughput and memory', () => {
    const r = umfa(['bench', ...small]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^dir\s+dtype\s+B×N×H×D\s+causal\s+ms\s+throughput\s+memory$/m);
    expect(r.stdout).toMatch(/^fwd\s+f32\s+1×64×2×16\s+no\s+[\d.]+\s+[\d.]+ [GT]FLOP\/s\s+[\d.]+ KiB$/m);
  });

  test('--plot writes a self-contained SVG of throughput against sequence length', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'umfa-plot-')), 'throughput.svg');
    const r = umfa(['bench', ...small, '--dtype', 'f32,f16', '--plot', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`plot written to ${file}`);
    const svg = readFileSync(file, 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2); // one line per dtype
    expect(svg).toContain('sequence length');
    expect(svg).toMatch(/FLOP\/s/);
    expect(svg).toContain('fwd f32 B1 H2 D16');
    expect(svg).not.toMatch(/NaN|undefined/);
  });

  test('--quick checks each shape against the float64 reference, then times it', () => {
    const r = umfa(['bench', '--quick']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('max err');
    expect(r.stdout.match(/ pass /g)?.length).toBe(5);
    expect(r.stdout).toContain('all 5 shapes match the float64 reference');
    const j = JSON.parse(umfa(['bench', '--quick', '--json', '--reps', '1']).stdout) as { meta: { quick: boolean }; results: Result[] };
    expect(validate(schema, j)).toEqual([]);
    expect(j.meta.quick).toBe(true);
    expect(new Set(j.results.map((x) => x.dtype))).toEqual(new Set(['f32', 'f16', 'bf16']));
    for (const x of j.results) expect(x.check?.passed).toBe(true);
  });

  // util-linux `script` runs the CLI on a pseudo-terminal: progress bar and colour appear there.
  const haveScript = spawnSync('script', ['--version']).status === 0;
  test.skipIf(!haveScript)('on a terminal: a progress bar on stderr and colours; NO_COLOR removes colours only', () => {
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} bench --seqlen 32,64 --heads 1 --head-dim 8 --reps 1 --warmup 0`;
    const env = { ...process.env, UMFA_NUM_THREADS: '2' } as NodeJS.ProcessEnv;
    delete env.FORCE_COLOR;
    delete env.NO_COLOR;
    const tty = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toContain('\r\u001b[2K['); // the bar redraws in place
    expect(tty.stdout).toMatch(/\] 1\/2 /);
    const noColor = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...env, NO_COLOR: '1' } });
    expect(noColor.stdout).toContain('\r\u001b[2K[');
    expect(noColor.stdout).not.toMatch(/\u001b\[3\dm/);
  });

  test("errors from the core reach stderr with the core's message and status", () => {
    const info = JSON.parse(umfa(['info', '--json']).stdout) as { backends: { name: string; available: boolean }[] };
    if (info.backends.find((b) => b.name === 'cuda')?.available) return; // exercised on machines without CUDA
    const r = umfa(['bench', '--backend', 'cuda', ...small]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^umfa: error: .+\(UMFA_STATUS_BACKEND_UNAVAILABLE\)$/m);
  });
});

// CUDA through device tensors, without a GPU: UMFA_CUDA_LIB points libumfa at the mock backend of
// packages/ts-tests/mock-cuda (two devices whose memory is host memory, calls computed by a CPU
// context, every pointer checked against its allocations).
describe.skipIf(!haveLibrary)('bench on CUDA (mock backend)', () => {
  const env = { UMFA_CUDA_LIB: mockCudaLibrary() };
  const small = ['--seqlen', '32,64', '--heads', '2', '--head-dim', '16', '--reps', '2', '--warmup', '1'];

  test('--backend cuda times device tensors, forward and backward, every dtype', () => {
    const r = umfa(['bench', '--backend', 'cuda', ...small, '--dtype', 'f32,f16,bf16', '--direction', 'both', '--kv-heads', '1', '--causal', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { meta: { backend: string; threads: number; device?: number; timing: string }; results: (Result & { backend: string })[] };
    expect(validate(schema, report)).toEqual([]);
    expect(report.meta).toMatchObject({ backend: 'cuda', threads: 0, device: 0, timing: 'call+synchronize' });
    expect(report.results).toHaveLength(2 * 3 * 2);
    for (const x of report.results) {
      expect(x.backend).toBe('cuda');
      expect(x.ms.median).toBeGreaterThan(0);
    }
  });

  test('--backend auto runs on CUDA when it is there; --device picks the device', () => {
    const auto = JSON.parse(umfa(['bench', '--backend', 'auto', '--seqlen', '32', '--heads', '1', '--head-dim', '8', '--reps', '1', '--json'], env).stdout) as { meta: { backend: string; device?: number } };
    expect(auto.meta).toMatchObject({ backend: 'cuda', device: 0 });
    const table = umfa(['bench', '--backend', 'cuda', '--device', '1', '--seqlen', '32', '--heads', '1', '--head-dim', '8', '--reps', '1'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^umfa \S+ · cuda backend · device 1$/m);
    expect(table.stdout).toContain('(each call and a synchronize)');
    const bad = umfa(['bench', '--backend', 'cuda', '--device', '2', '--seqlen', '32', '--heads', '1', '--head-dim', '8'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^umfa: error: .*device_index.*\(UMFA_STATUS_INVALID_ARGUMENT\)$/m);
  });

  test('--quick --backend cuda checks the downloaded outputs against the float64 reference', () => {
    const r = umfa(['bench', '--quick', '--backend', 'cuda', '--reps', '1'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('cuda backend');
    expect(r.stdout).toContain('all 5 shapes match the float64 reference');
  });

  test('umfa info is unchanged: it lists the CUDA backend the library loaded', () => {
    const info = JSON.parse(umfa(['info', '--json'], env).stdout) as { backends: unknown[]; buildInfo: string };
    expect(info.backends).toEqual([
      { name: 'cpu', available: true, deviceCount: 1 },
      { name: 'cuda', available: true, deviceCount: 2 },
      { name: 'metal', available: false, deviceCount: 0 },
    ]);
    expect(info.buildInfo).toContain(env.UMFA_CUDA_LIB);
  });

  test('umfa check stays on host memory and says so for a CUDA context', () => {
    const r = umfa(['check', '--backend', 'auto', '--filter', 'basic'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--backend auto gave a cuda context, but umfa check passes host memory');
  });
});
