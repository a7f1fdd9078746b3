import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { int, oneOf, parse } from '../args.js';
import { binding, bindingVersion, type Binding } from '../binding.js';
import type { Io } from '../context.js';
import { describeError, Exit, FailureError, requireHostBackend, UsageError } from '../errors.js';
import { readNpy } from '../npy.js';
import { compare } from '../reference.js';
import { renderTable } from '../table.js';
import { Progress } from '../term.js';

export const HELP = `umfa check — run the conformance vectors through the binding

Usage:
  umfa check [--manifest PATH] [options]

Reads the manifest of conformance vectors (inputs and expected outputs as .npy files computed by
an independent float64 reference), runs every case forward (and backward where the case has
gradients) through @umfa/koffi, compares each output with the case's tolerances
(|actual − expected| ≤ atol + rtol·|expected|) and prints a pass/fail table.
Exit code 1 when any case fails or cannot be run.

Options:
      --manifest PATH     the manifest.json to run (default: $UMFA_CONFORMANCE_MANIFEST,
                          else the repository's conformance/manifest.json when run
                          inside a checkout, else the compact set of vectors
                          installed with this package)
      --filter TEXT       only cases whose id or a tag contains TEXT (repeatable)
      --skip ID           skip a case by id (repeatable)
      --backend NAME      cpu, metal or auto (default cpu)
      --threads N         CPU worker threads (0 = one per core; default 0)
      --failures          list only the cases that did not pass
      --json              machine-readable results
  -h, --help              show this help`;

/** A tensor entry of the manifest (see conformance/README.md). */
interface TensorEntry {
  file: string;
  dtype: 'f32' | 'f16' | 'bf16' | 'bool' | 'i32';
  shape: number[];
  storage_order?: number[];
  strides?: number[];
  /** Inputs only: strides with 0 where the stored data merely repeats (stride-0 broadcasting). */
  view_strides?: number[];
}

interface Tolerance {
  atol: number;
  rtol: number;
}

interface CaseEntry {
  id: string;
  description?: string;
  tags?: string[];
  dtype: string;
  out_dtype?: string;
  backward?: boolean;
  varlen?: boolean;
  tolerances?: Record<string, Tolerance>;
  options: {
    mask_mode?: number;
    softmax_scale?: number;
    softcap?: number;
    has_window?: number;
    flags?: number;
    window_left?: number;
    window_right?: number;
    max_seqlen_q?: number;
    max_seqlen_k?: number;
    attn_mask?: TensorEntry | null;
    alibi_slopes?: TensorEntry | null;
    cu_seqlens_q?: TensorEntry | null;
    cu_seqlens_k?: TensorEntry | null;
  };
  inputs: Record<string, TensorEntry>;
  expected?: Record<string, TensorEntry>;
  /** A case expected to be rejected: the status name or number the core must return. */
  expected_status?: string | number;
  expect_status?: string | number;
}

interface Manifest {
  format_version?: number;
  tolerances?: Record<string, Record<string, Tolerance>>;
  cases: CaseEntry[];
}

type Outcome = 'pass' | 'fail' | 'error' | 'skip';

interface CaseResult {
  id: string;
  dtype: string;
  tags: string[];
  outcome: Outcome;
  /** Largest absolute error per compared tensor. */
  maxAbsError: Record<string, number>;
  /** Tensors that had elements outside tolerance, with their count. */
  mismatches: Record<string, number>;
  message?: string;
}

function defaultManifest(env: NodeJS.ProcessEnv): string | undefined {
  if (env.UMFA_CONFORMANCE_MANIFEST) return env.UMFA_CONFORMANCE_MANIFEST;
  // The repository's vectors: search upwards from this file and from the working directory.
  const starts = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
  for (const start of starts) {
    let dir = start;
    for (;;) {
      const candidate = resolve(dir, 'conformance', 'manifest.json');
      if (existsSync(candidate)) return candidate;
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  // Outside a checkout: the compact set shipped in this package (scripts/bundle-vectors.mjs).
  const bundled = fileURLToPath(new URL('../../vectors/manifest.json', import.meta.url));
  return existsSync(bundled) ? bundled : undefined;
}

/** Reads a manifest tensor as a strided view over the file's data (no reordering). */
function loadTensor(umfa: Binding, base: string, e: TensorEntry) {
  const arr = readNpy(resolve(base, e.file));
  const count = arr.shape.reduce((a, b) => a * b, 1);
  const need = e.shape.length === 0 ? 1 : e.shape.reduce((a, b) => a * b, 1);
  if (count !== need) throw new Error(`${e.file}: holds ${count} elements, the manifest's shape [${e.shape.join(', ')}] has ${need}`);
  const strides = e.view_strides ?? e.strides;
  return umfa.tensor(arr.data, e.shape, strides ? { dtype: e.dtype, strides } : { dtype: e.dtype });
}

const NAN_BITS: Record<string, number> = { f16: 0x7e00, bf16: 0x7fc0 };

/**
 * An output view laid out like the expected file (same storage order and strides), filled with
 * NaN so that an element the library does not write fails the comparison.
 */
function makeOutput(umfa: Binding, e: TensorEntry) {
  const n = e.shape.reduce((a, b) => a * b, 1);
  let data: Float32Array | Uint16Array;
  if (e.dtype === 'f32') data = new Float32Array(n).fill(Number.NaN);
  else if (e.dtype === 'f16' || e.dtype === 'bf16') data = new Uint16Array(n).fill(NAN_BITS[e.dtype] as number);
  else throw new Error(`output dtype ${e.dtype} is not a float dtype`);
  return umfa.tensor(data, e.shape, e.strides ? { dtype: e.dtype, strides: e.strides } : { dtype: e.dtype });
}

/** An expected tensor's values in storage order (the order of the output view's buffer). */
function loadExpected(base: string, e: TensorEntry): Float32Array | Float64Array {
  const arr = readNpy(resolve(base, e.file));
  if (!(arr.data instanceof Float32Array || arr.data instanceof Float64Array)) {
    throw new Error(`${e.file}: expected values must be f32 or f64, found ${arr.descr}`);
  }
  const n = e.shape.reduce((a, b) => a * b, 1);
  if (arr.data.length !== n) throw new Error(`${e.file}: holds ${arr.data.length} elements, the manifest's shape has ${n}`);
  return arr.data;
}

function attentionOptions(umfa: Binding, base: string, c: CaseEntry) {
  const o = c.options;
  const opts: Record<string, unknown> = {};
  if (o.mask_mode) opts.maskMode = o.mask_mode;
  if (o.softmax_scale) opts.scale = o.softmax_scale;
  if (o.softcap) opts.softcap = o.softcap;
  if (o.has_window) opts.window = [o.window_left ?? -1, o.window_right ?? -1];
  if ((o.flags ?? 0) & 1) opts.deterministic = true;
  if (o.attn_mask) opts.attnMask = loadTensor(umfa, base, o.attn_mask);
  if (o.alibi_slopes) opts.alibiSlopes = loadTensor(umfa, base, o.alibi_slopes);
  if (o.cu_seqlens_q) opts.cuSeqlensQ = loadTensor(umfa, base, o.cu_seqlens_q);
  if (o.cu_seqlens_k) opts.cuSeqlensK = loadTensor(umfa, base, o.cu_seqlens_k);
  if (o.max_seqlen_q) opts.maxSeqlenQ = o.max_seqlen_q;
  if (o.max_seqlen_k) opts.maxSeqlenK = o.max_seqlen_k;
  return opts;
}

type AnyDType = 'f32' | 'f16' | 'bf16';

function runCase(umfa: Binding, ctx: InstanceType<Binding['Context']>, base: string, c: CaseEntry, tolerances: Manifest['tolerances']): CaseResult {
  const result: CaseResult = { id: c.id, dtype: c.dtype, tags: c.tags ?? [], outcome: 'pass', maxAbsError: {}, mismatches: {} };
  const q = loadTensor(umfa, base, need(c.inputs, 'q', c.id));
  const k = loadTensor(umfa, base, need(c.inputs, 'k', c.id));
  const v = loadTensor(umfa, base, need(c.inputs, 'v', c.id));
  const opts = attentionOptions(umfa, base, c);
  const expected = c.expected ?? {};
  const status = c.expected_status ?? c.expect_status;
  const outDtype = (c.out_dtype ?? c.dtype) as AnyDType;
  const tol = (name: string): Tolerance => {
    const t = c.tolerances?.[name] ?? tolerances?.[c.dtype]?.[name === 'out' || name === 'lse' ? name : 'grad'];
    if (!t) throw new Error(`no tolerance for ${name}`);
    return t;
  };
  const check = (name: string, actual: ArrayBufferView, dtype: AnyDType | 'f32') => {
    const entry = expected[name];
    if (!entry) return;
    const want = loadExpected(base, entry);
    const got = umfa.toFloat32Array(actual, dtype);
    const t = tol(name);
    const r = compare(got, want, t.atol, t.rtol);
    result.maxAbsError[name] = r.maxAbsError;
    if (r.mismatches > 0) {
      result.mismatches[name] = r.mismatches;
      result.outcome = 'fail';
    }
  };

  if (status !== undefined && status !== 0 && status !== 'OK') {
    try {
      umfa.attention(q, k, v, { ...opts, context: ctx, outDtype, returnLse: true });
    } catch (e) {
      const got = e as { status?: number; statusName?: string };
      if (got.status === status || got.statusName === status || `UMFA_STATUS_${got.statusName}` === status) return result;
      throw e;
    }
    result.outcome = 'fail';
    result.message = `expected status ${status}, the call succeeded`;
    return result;
  }

  // Outputs laid out like the expected files and NaN-filled (conformance/README.md, "Running a case").
  const outEntry = expected.out ?? { file: '', dtype: outDtype, shape: q.shape.slice(0, -1).concat([v.shape.at(-1) ?? 0]) };
  const out = makeOutput(umfa, { ...outEntry, dtype: outDtype });
  const lse = expected.lse ? makeOutput(umfa, { ...expected.lse, dtype: 'f32' }) : undefined;
  const fwd = ctx.attention(q, k, v, { ...opts, out, ...(lse ? { lse } : { returnLse: true }) });
  check('out', fwd.out.data, outDtype);
  if (fwd.lse) check('lse', fwd.lse.data, 'f32');
  const wantsGrads = c.backward !== false && ['dq', 'dk', 'dv'].some((g) => expected[g]);
  if (wantsGrads) {
    const dout = loadTensor(umfa, base, need(c.inputs, 'dout', c.id));
    const grad = (name: 'dq' | 'dk' | 'dv') => {
      const e = expected[name];
      if (!e) throw new Error(`case ${c.id} has no expected ${name}`);
      return makeOutput(umfa, e);
    };
    const g = ctx.attentionBackward(q, k, v, fwd.out, dout, fwd.lse!, { ...opts, dq: grad('dq'), dk: grad('dk'), dv: grad('dv') });
    check('dq', g.dq.data, (expected.dq?.dtype ?? c.dtype) as AnyDType);
    check('dk', g.dk.data, (expected.dk?.dtype ?? c.dtype) as AnyDType);
    check('dv', g.dv.data, (expected.dv?.dtype ?? c.dtype) as AnyDType);
  }
  if (result.outcome === 'fail') {
    result.message = Object.entries(result.mismatches)
      .map(([n, count]) => `${n}: ${count} element${count === 1 ? '' : 's'} off (max |err| ${result.maxAbsError[n]?.toExponential(2)})`)
      .join('; ');
  }
  return result;
}

function need(m: Record<string, TensorEntry>, name: string, id: string): TensorEntry {
  const e = m[name];
  if (!e) throw new Error(`case ${id} has no input "${name}"`);
  return e;
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values: v } = parse(args, {
    manifest: { type: 'string' },
    filter: { type: 'string', multiple: true },
    skip: { type: 'string', multiple: true },
    backend: { type: 'string' },
    threads: { type: 'string' },
    failures: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const manifestPath = typeof v.manifest === 'string' ? resolve(v.manifest) : defaultManifest(io.env);
  if (!manifestPath) throw new UsageError('no conformance/manifest.json found here; pass --manifest PATH');
  if (!existsSync(manifestPath)) throw new UsageError(`--manifest: ${manifestPath} does not exist`);
  const backendName = oneOf('backend', v.backend, ['cpu', 'metal', 'auto'] as const, 'cpu');
  const threads = int('threads', v.threads, 0, 0);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (e) {
    throw new FailureError(`cannot read ${manifestPath}: ${(e as Error).message}`);
  }
  if (!Array.isArray(manifest.cases)) throw new FailureError(`${manifestPath}: no "cases" array`);
  const base = dirname(manifestPath);
  const filters = (v.filter as string[] | undefined) ?? [];
  const skips = new Set((v.skip as string[] | undefined) ?? []);
  const cases = manifest.cases.filter((c) => !filters.length || filters.some((f) => c.id.includes(f) || (c.tags ?? []).some((t) => t.includes(f))));
  if (!cases.length) throw new UsageError('no case matches the filters');

  const umfa = await binding();
  const ctx = new umfa.Context({ backend: backendName, numThreads: threads });
  try {
    requireHostBackend('check', ctx.backend, backendName);
  } catch (e) {
    ctx.dispose();
    throw e;
  }
  const results: CaseResult[] = [];
  const progress = new Progress(cases.length, io.err);
  try {
    for (const c of cases) {
      progress.update(c.id);
      if (skips.has(c.id)) {
        results.push({ id: c.id, dtype: c.dtype, tags: c.tags ?? [], outcome: 'skip', maxAbsError: {}, mismatches: {}, message: 'skipped with --skip' });
      } else {
        try {
          results.push(runCase(umfa, ctx, base, c, manifest.tolerances));
        } catch (e) {
          results.push({ id: c.id, dtype: c.dtype, tags: c.tags ?? [], outcome: 'error', maxAbsError: {}, mismatches: {}, message: describeError(e) });
        }
      }
      progress.tick(c.id);
    }
  } finally {
    progress.end();
    ctx.dispose();
  }
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const passed = count('pass');
  const failed = count('fail') + count('error');
  const skipped = count('skip');

  if (v.json) {
    io.print(JSON.stringify({ manifest: manifestPath, binding: await bindingVersion(), library: umfa.libraryPath(), passed, failed, skipped, cases: results }, null, 2));
  } else {
    const s = io.style;
    const mark: Record<Outcome, string> = { pass: s.green('pass'), fail: s.red('FAIL'), error: s.red('ERROR'), skip: s.yellow('skip') };
    const err = (r: CaseResult, names: string[]) => {
      const xs = names.map((n) => r.maxAbsError[n]).filter((x): x is number => x !== undefined);
      return xs.length ? Math.max(...xs).toExponential(1) : '-';
    };
    const shown = v.failures ? results.filter((r) => r.outcome !== 'pass') : results;
    io.print(`conformance: ${manifestPath}`);
    io.print(`binding: ${await bindingVersion()} · library ${umfa.version()} · ${umfa.libraryPath()}`);
    io.print();
    if (shown.length) {
      io.print(
        renderTable(
          ['case', 'dtype', 'out err', 'lse err', 'grad err', 'result', 'detail'],
          shown.map((r) => [r.id, r.dtype, err(r, ['out']), err(r, ['lse']), err(r, ['dq', 'dk', 'dv']), mark[r.outcome], r.message ?? '']),
          ['left', 'left', 'right', 'right', 'right', 'left', 'left'],
        ),
      );
      io.print();
    }
    io.print(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  }
  if (failed > 0) {
    if (!v.json) io.err.write(`${io.errStyle.red('umfa check:')} ${failed} of ${results.length} case(s) failed\n`);
    return Exit.FAILURE;
  }
  return Exit.OK;
}

