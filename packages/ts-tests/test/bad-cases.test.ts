// conformance/bad_cases.json, the bad inputs every binding must reject, run through both
// TypeScript bindings (vitest projects `koffi` and `napi`). Each case must throw the typed error
// (UmfaError; UmfaLoadError for a library of another ABI version) with the expected status and,
// when the core reports it, the core's message; no output is written and no input changes. Cases
// the binding itself rejects first (`bindings.ts.binding`) may carry the binding's own message
// and status (`bindings.ts.status`); `bindings.ts.skip` says why a case cannot be expressed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;
type DType = Koffi.DType;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const packageName = `@umfa/${which}`;
const u: Binding = (await import(`${packageName}/internal`)) as Binding;

const here = dirname(fileURLToPath(import.meta.url));
const file = process.env['UMFA_BAD_CASES'] ?? resolve(here, '..', '..', '..', 'conformance', 'bad_cases.json');

interface TensorSpec {
  dtype?: DType | number;
  shape?: number[];
  strides?: number[];
  data?: string;
  device?: string;
  values?: number[];
}
interface BadCase {
  id: string;
  description: string;
  call: 'forward' | 'backward' | 'context_create' | 'load';
  varlen?: boolean;
  tensors?: Record<string, TensorSpec | null>;
  options?: Record<string, unknown>;
  context?: { handle?: string; workspace_limit_bytes?: number };
  context_options?: Record<string, number>;
  requires?: string;
  status: string;
  message?: string;
  bindings?: Record<string, { skip?: string; binding?: boolean; status?: string; raw?: boolean }>;
}
const spec = JSON.parse(readFileSync(file, 'utf8')) as {
  format_version: number;
  base: Record<'dense' | 'varlen', Record<string, TensorSpec>>;
  cases: BadCase[];
};

const SENTINEL = NaN;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Elements a view needs (0 when its extents or strides are not representable here). */
function extent(shape: readonly number[], strides: readonly number[] | undefined): number {
  const st = strides ?? u.contiguousStrides(shape);
  let max = 0;
  for (let i = 0; i < shape.length; i++) {
    const n = shape[i] as number;
    const s = st[i] as number;
    if (n === 0) return 0;
    if (n < 0 || s < 0) continue;
    max += (n - 1) * s;
  }
  return Number.isSafeInteger(max) && max < 1 << 24 ? max + 1 : 0;
}

/** Builds one tensor of a case: inputs get values, outputs NaN sentinels. */
function makeTensor(name: string, s: TensorSpec, output: boolean, seed: number, others: Record<string, Tensor>): Tensor {
  const shape = s.shape ?? [];
  const dtype = (s.dtype ?? 'f32') as DType;
  const known = typeof dtype === 'string' && ['f32', 'f16', 'bf16', 'bool', 'i32'].includes(dtype);
  let n = Math.max(extent(shape, s.strides), 1);
  if (s.data === 'short') n = Math.max(1, n - 1);
  let data: ArrayBufferView | null;
  if (s.data === 'null') data = null;
  else if (s.data?.startsWith('same_as:')) data = (others[s.data.slice('same_as:'.length)] as Tensor).data;
  else if (s.values) data = dtype === 'i32' ? Int32Array.from(s.values) : u.fromFloat32(s.values, known ? dtype : 'f32');
  else {
    const values = output ? new Float32Array(n).fill(SENTINEL) : rand(n, seed);
    data = known ? u.fromFloat32(values, dtype) : values;
    if (output && data instanceof Uint16Array) data.fill(0x7e00); // NaN in f16 and bf16
  }
  void name;
  return { data: data as ArrayBufferView, dtype, shape, ...(s.strides ? { strides: s.strides } : {}) } as Tensor;
}

function snapshot(t: Tensor | undefined): Uint8Array | undefined {
  if (!t || !t.data) return undefined;
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
}
function sameBytes(t: Tensor, bytes: Uint8Array): boolean {
  const now = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return now.length === bytes.length && now.every((b, i) => b === bytes[i]);
}

const OUTPUTS = new Set(['out', 'lse', 'dq', 'dk', 'dv']);
const OPTION_NAMES: Record<string, string> = {
  mask_mode: 'maskMode',
  softmax_scale: 'scale',
  softcap: 'softcap',
  max_seqlen_q: 'maxSeqlenQ',
  max_seqlen_k: 'maxSeqlenK',
  attn_mask: 'attnMask',
  alibi_slopes: 'alibiSlopes',
  cu_seqlens_q: 'cuSeqlensQ',
  cu_seqlens_k: 'cuSeqlensK',
};

function numberOf(x: unknown): number {
  if (x === 'nan') return NaN;
  if (x === 'inf') return Infinity;
  if (x === '-inf') return -Infinity;
  return x as number;
}

/** Runs the case's call; returns what it threw (undefined when it did not) and what to check. */
async function runCase(c: BadCase): Promise<{ error: unknown; check: () => string[] }> {
  if (c.call === 'load') {
    const dir = mkdtempSync(join(tmpdir(), 'umfa-badlib-'));
    try {
      writeFileSync(join(dir, 'fake.c'), '#include <stdint.h>\nuint32_t umfa_abi_version(void){return 99;}\nconst char* umfa_version_string(void){return "9.0.0";}\n');
      execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libumfa.so.1'), join(dir, 'fake.c')]);
      const entry = fileURLToPath(import.meta.resolve(packageName));
      const script = `import(${JSON.stringify(entry)}).then(u => { try { u.version(); console.log('{}'); } catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); } })`;
      const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, UMFA_LIB_DIR: dir }, encoding: 'utf8' });
      const thrown = JSON.parse(r.stdout.trim() || '{}') as { name?: string; message?: string };
      return { error: thrown.name ? thrown : undefined, check: () => [] };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (c.call === 'context_create') {
    const o = c.context_options ?? {};
    const backends = ['auto', 'cpu', 'cuda'];
    const options: Koffi.ContextOptions = {
      backend: (backends[o['backend'] ?? 0] ?? o['backend']) as Koffi.BackendName,
      ...(o['num_threads'] !== undefined ? { numThreads: o['num_threads'] } : {}),
      ...(o['device_index'] !== undefined ? { deviceIndex: o['device_index'] } : {}),
    };
    try {
      new u.Context(options).dispose();
      return { error: undefined, check: () => [] };
    } catch (e) {
      return { error: e, check: () => [] };
    }
  }

  const base = spec.base[c.varlen ? 'varlen' : 'dense'];
  const tensors: Record<string, Tensor> = {};
  let seed = 1;
  const names = ['q', 'k', 'v', 'out', 'lse', 'dout', 'dq', 'dk', 'dv'];
  const overrides = c.tensors ?? {};
  // Inputs first, so that `same_as:q` can refer to them.
  for (const name of [...names.filter((n) => !OUTPUTS.has(n)), ...names.filter((n) => OUTPUTS.has(n))]) {
    const o = overrides[name];
    if (o === null) continue;
    tensors[name] = makeTensor(name, { ...base[name], ...o }, OUTPUTS.has(name), seed++, tensors);
  }
  const options: Record<string, unknown> = {};
  const optionSpecs: Record<string, unknown> = {};
  for (const key of ['cu_seqlens_q', 'cu_seqlens_k']) if (base[key]) optionSpecs[key] = base[key];
  Object.assign(optionSpecs, c.options ?? {});
  for (const [key, value] of Object.entries(optionSpecs)) {
    const name = OPTION_NAMES[key];
    if (name === undefined) throw new Error(`${c.id}: option ${key} has no TypeScript name in this runner`);
    if (value === null) continue;
    options[name] = typeof value === 'object' ? makeTensor(key, value as TensorSpec, false, seed++, tensors) : numberOf(value);
  }

  let ctx: Koffi.Context;
  if (c.context?.workspace_limit_bytes !== undefined) ctx = new u.Context({ backend: 'cpu', workspaceLimitBytes: c.context.workspace_limit_bytes });
  else ctx = new u.Context({ backend: 'cpu' });
  if (c.context?.handle === 'disposed') ctx.dispose();

  const inputs = Object.entries(tensors).filter(([n]) => !OUTPUTS.has(n));
  for (const t of Object.values(options)) if (t && typeof t === 'object') inputs.push(['option', t as Tensor]);
  const before = inputs.map(([n, t]) => [n, t, snapshot(t)] as const);
  const outputs = Object.entries(tensors).filter(([n]) => OUTPUTS.has(n) && !(n === 'lse' && c.call === 'backward'));
  const check = () => {
    const problems: string[] = [];
    for (const [n, t] of outputs) {
      if (tensors['q'] && t.data === tensors['q'].data) continue; // an output aliasing q: q's check covers it
      const values = u.toFloat32Array(t.data, typeof t.dtype === 'string' && t.dtype !== 'bool' && t.dtype !== 'i32' ? t.dtype : 'f32');
      if (!values.every((x) => Number.isNaN(x))) problems.push(`${n} was written`);
    }
    for (const [n, t, bytes] of before) if (bytes && !sameBytes(t, bytes)) problems.push(`input ${n} changed`);
    return problems;
  };
  const t = tensors;
  try {
    if (c.call === 'forward') {
      const fwd = { ...options, ...(t['out'] ? { out: t['out'] } : {}), ...(t['lse'] ? { lse: t['lse'] } : {}) };
      ctx.attention(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, fwd);
    } else {
      const bwd = { ...options, dq: t['dq'], dk: t['dk'], dv: t['dv'] };
      ctx.attentionBackward(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, t['out'] as Tensor, t['dout'] as Tensor, t['lse'] as Tensor, bwd);
    }
    return { error: undefined, check };
  } catch (e) {
    // The Promise variant must reject with the same status.
    let asyncError: unknown;
    try {
      if (c.call === 'forward') {
        await ctx.attentionAsync(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, { ...options, ...(t['out'] ? { out: t['out'] } : {}), ...(t['lse'] ? { lse: t['lse'] } : {}) });
      } else {
        await ctx.attentionBackwardAsync(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, t['out'] as Tensor, t['dout'] as Tensor, t['lse'] as Tensor, { ...options, dq: t['dq'], dk: t['dk'], dv: t['dv'] });
      }
    } catch (ae) {
      asyncError = ae;
    }
    return {
      error: e,
      check: () => {
        const problems = check();
        const s = (x: unknown) => (x as { status?: number }).status;
        if (s(asyncError) !== s(e)) problems.push(`async variant: ${asyncError === undefined ? 'resolved' : `status ${s(asyncError)}`}, sync: status ${s(e)}`);
        return problems;
      },
    };
  } finally {
    ctx.dispose();
  }
}

const tally = { passed: 0, skipped: 0 };
const cudaAvailable = u.backends().find((b) => b.name === 'cuda')?.available ?? false;

describe(`${packageName}: conformance/bad_cases.json`, () => {
  expect(spec.format_version).toBe(1);
  for (const c of spec.cases) {
    const ts = c.bindings?.['ts'] ?? {};
    const skip = ts.skip ?? (c.requires === 'no_cuda' && cudaAvailable ? 'needs a machine without CUDA' : undefined);
    if (skip !== undefined) {
      tally.skipped++;
      it.skip(`${c.id} (skipped: ${skip})`, () => {});
      continue;
    }
    const status = ts.status ?? c.status;
    it(`${c.id} -> ${status}${ts.binding ? ' (binding)' : ''}`, async () => {
      const { error, check } = await runCase(c);
      expect(error, `${c.id}: ${c.description}: nothing was thrown`).toBeDefined();
      if (status === 'ABI_MISMATCH') {
        const e = error as { name: string; message: string };
        expect(e.name).toBe('UmfaLoadError');
        expect(e.message).toMatch(/ABI version 99/);
      } else {
        expect(error).toBeInstanceOf(u.UmfaError);
        const e = error as InstanceType<typeof u.UmfaError>;
        expect(e.statusName, `${c.id}: ${e.message}`).toBe(status);
        expect(e.code).toBe(`UMFA_STATUS_${status}`);
        expect(e.message.length).toBeGreaterThan(0);
        if (!ts.binding && c.message) expect(e.message).toContain(c.message);
      }
      expect(check()).toEqual([]);
      tally.passed++;
    });
  }
  it('summary', () => {
    console.log(`${packageName} bad cases: ${tally.passed} passed, ${tally.skipped} skipped of ${spec.cases.length}`);
  });
});
