import { writeFileSync } from 'node:fs';
import { int, intList, listOf, oneOf, parse } from '../args.js';
import type { DeviceTensor } from '@umfa/koffi';
import { binding, bindingVersion, type Binding } from '../binding.js';
import type { Io } from '../context.js';
import { Exit, FailureError, UsageError } from '../errors.js';
import { attentionFlops, type Direction, type Shape } from '../flops.js';
import { compare, referenceAttention, type CausalMode } from '../reference.js';
import { renderPlot, type Series } from '../svg.js';
import { machineInfo } from '../sysinfo.js';
import { formatBytes, formatMs, formatRate, renderTable } from '../table.js';
import { Progress } from '../term.js';
import { cliVersion } from '../version.js';

export const HELP = `umfa bench — time attention over a grid of shapes

Usage:
  umfa bench [options]
  umfa bench --quick

Every list option takes comma-separated values (256,512,1024) or a doubling range
(256..4096 = 256, 512, 1024, 2048, 4096); the grid is every combination.

Shape:
  -b, --batch LIST        batch size                                   (default 1)
      --heads LIST        query heads                                  (default 8)
      --kv-heads LIST     key/value heads, must divide --heads         (default: --heads)
  -n, --seqlen LIST       query sequence length (alias --seqlens)      (default 512,1024,2048)
      --seqlen-k LIST     key sequence length                          (default: --seqlen)
  -d, --head-dim LIST     head dimension, 1..256                       (default 64)
      --dtype LIST        f32, f16, bf16                               (default f32)
      --causal            causal mask (FlashAttention's bottom-right diagonal)

Run:
      --backend NAME      cpu, cuda, metal or auto (a usable GPU first)  (default cpu)
      --device N          CUDA device ordinal                          (default 0)
      --direction DIR     fwd, bwd or both                             (default fwd)
      --reps N            timed repetitions per shape; the median is reported (default 10)
      --warmup N          untimed repetitions first                    (default 2)
      --threads N         CPU worker threads (0 = one per core)        (default 0)

Output:
      --json              print the results as JSON (schema "umfa-bench/1", see docs/cli.md)
      --plot FILE.svg     also draw throughput against sequence length into FILE.svg
      --quick             the demo: a few small shapes, each checked against a float64
                          reference before it is timed; exit 1 if one is off
  -h, --help              show this help

Throughput counts FLOPs as FlashAttention does: forward 4·B·H·Nq·Nk·D, halved when causal;
backward 2.5× forward. "memory" is the bytes of the tensors one call reads and writes.
On Metal the tensors are uploaded once into umfa buffers (page-aligned memory the GPU uses in
place) and each call waits for its command buffer. On CUDA the tensors are uploaded once (device tensors) and each timed call is followed by
ctx.synchronize(), so a time is the host clock from the call to the end of its kernels,
launch and synchronization latency included (bench/cuda times with device events).
The progress bar is drawn only when stderr is a terminal.`;

const DTYPES = ['f32', 'f16', 'bf16'] as const;
type BenchDType = (typeof DTYPES)[number];

interface Problem extends Shape {
  dtype: BenchDType;
}

/** One row of the results (the `results[]` items of schema umfa-bench/1). */
export interface BenchResult {
  direction: Direction;
  backend: string;
  dtype: BenchDType;
  batch: number;
  heads: number;
  kvHeads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  causal: boolean;
  flops: number;
  ms: { median: number; min: number; mean: number; max: number };
  reps: number;
  gflops: number;
  tflops: number;
  memoryBytes: number;
  check?: { reference: 'float64'; maxAbsError: number; atol: number; rtol: number; passed: boolean };
}

export interface BenchReport {
  schema: 'umfa-bench/1';
  meta: {
    date: string;
    command: string;
    quick: boolean;
    cli: string;
    binding: string;
    umfa: { version: string; abi: number; buildInfo: string };
    library: string;
    backend: string;
    threads: number;
    device?: number;
    timing: 'call' | 'call+synchronize';
    reps: number;
    warmup: number;
    machine: ReturnType<typeof machineInfo>;
    peakRssBytes: number;
  };
  results: BenchResult[];
}

/** A small deterministic generator (mulberry32) so runs are comparable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValues(n: number, next: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = next() * 2 - 1;
  return a;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function summarize(times: number[]): BenchResult['ms'] {
  return {
    median: median(times),
    min: Math.min(...times),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    max: Math.max(...times),
  };
}

function shapeLabel(p: Problem): string {
  const n = p.seqlenK === p.seqlenQ ? `${p.seqlenQ}` : `${p.seqlenQ}/${p.seqlenK}`;
  const h = p.kvHeads === p.heads ? `${p.heads}` : `${p.heads}/${p.kvHeads}`;
  return `${p.batch}×${n}×${h}×${p.headDim}`;
}

interface Inputs {
  q: ReturnType<Binding['tensor']>;
  k: ReturnType<Binding['tensor']>;
  v: ReturnType<Binding['tensor']>;
  /** The values the core sees (after rounding to the dtype), for the reference. */
  qf: Float32Array;
  kf: Float32Array;
  vf: Float32Array;
}

function makeInputs(umfa: Binding, p: Problem, seed: number): Inputs {
  const next = rng(seed);
  const qShape = [p.batch, p.seqlenQ, p.heads, p.headDim];
  const kvShape = [p.batch, p.seqlenK, p.kvHeads, p.headDim];
  const mk = (shape: number[]) => {
    const values = randomValues(shape.reduce((a, b) => a * b, 1), next);
    const data = p.dtype === 'f32' ? values : umfa.fromFloat32(values, p.dtype);
    const t = umfa.tensor(data, shape, { dtype: p.dtype });
    return { t, f: p.dtype === 'f32' ? values : umfa.toFloat32Array(data, p.dtype) };
  };
  const q = mk(qShape);
  const k = mk(kvShape);
  const v = mk(kvShape);
  return { q: q.t, k: k.t, v: v.t, qf: q.f, kf: k.f, vf: v.f };
}

function tensorBytes(p: Problem, direction: Direction): number {
  const el = p.dtype === 'f32' ? 4 : 2;
  const qo = p.batch * p.seqlenQ * p.heads * p.headDim * el;
  const kv = p.batch * p.seqlenK * p.kvHeads * p.headDim * el;
  const lse = p.batch * p.heads * p.seqlenQ * 4;
  // forward: q, k, v in; out, lse out. backward: q, k, v, out, dout, lse in; dq, dk, dv out.
  return direction === 'fwd' ? 2 * qo + 2 * kv + lse : 4 * qo + 4 * kv + lse;
}

/** Quick-mode tolerances against the float64 reference (output rounded to the dtype). */
const QUICK_TOL: Record<BenchDType, { atol: number; rtol: number }> = {
  f32: { atol: 1e-5, rtol: 1e-4 },
  f16: { atol: 2e-3, rtol: 4e-3 },
  bf16: { atol: 1.6e-2, rtol: 3.2e-2 },
};

/** The demo's shapes: small enough for the float64 reference, varied enough to mean something. */
export const QUICK_SHAPES: Problem[] = [
  { batch: 1, heads: 4, kvHeads: 4, seqlenQ: 256, seqlenK: 256, headDim: 64, causal: false, dtype: 'f32' },
  { batch: 2, heads: 8, kvHeads: 2, seqlenQ: 256, seqlenK: 256, headDim: 64, causal: true, dtype: 'f32' },
  { batch: 1, heads: 4, kvHeads: 4, seqlenQ: 128, seqlenK: 512, headDim: 128, causal: true, dtype: 'f32' },
  { batch: 1, heads: 4, kvHeads: 4, seqlenQ: 512, seqlenK: 512, headDim: 64, causal: true, dtype: 'f16' },
  { batch: 1, heads: 4, kvHeads: 4, seqlenQ: 512, seqlenK: 512, headDim: 64, causal: false, dtype: 'bf16' },
];

export async function run(args: string[], io: Io): Promise<number> {
  const { values: v } = parse(args, {
    batch: { type: 'string', short: 'b', multiple: true },
    heads: { type: 'string', multiple: true },
    'kv-heads': { type: 'string', multiple: true },
    seqlen: { type: 'string', short: 'n', multiple: true },
    seqlens: { type: 'string', multiple: true },
    'seqlen-k': { type: 'string', multiple: true },
    'head-dim': { type: 'string', short: 'd', multiple: true },
    dtype: { type: 'string', multiple: true },
    causal: { type: 'boolean' },
    backend: { type: 'string' },
    device: { type: 'string' },
    direction: { type: 'string' },
    reps: { type: 'string' },
    warmup: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    plot: { type: 'string' },
    quick: { type: 'boolean' },
  });
  const quick = v.quick === true;
  const backendName = oneOf('backend', v.backend, ['cpu', 'cuda', 'metal', 'auto'] as const, 'cpu');
  const directionArg = oneOf('direction', v.direction, ['fwd', 'bwd', 'both'] as const, 'fwd');
  const directions: Direction[] = directionArg === 'both' ? ['fwd', 'bwd'] : [directionArg];
  const reps = int('reps', v.reps, quick ? 5 : 10);
  const warmup = int('warmup', v.warmup, quick ? 1 : 2, 0);
  const threads = int('threads', v.threads, 0, 0);
  const deviceIndex = int('device', v.device, 0, 0);
  const plotFile = typeof v.plot === 'string' ? v.plot : undefined;
  if (plotFile !== undefined && !plotFile.toLowerCase().endsWith('.svg')) throw new UsageError('--plot needs a file name ending in .svg');

  let problems: Problem[];
  if (quick) {
    const grid = ['batch', 'heads', 'kv-heads', 'seqlen', 'seqlens', 'seqlen-k', 'head-dim', 'dtype', 'causal', 'direction'];
    const given = grid.filter((g) => v[g] !== undefined);
    if (given.length) throw new UsageError(`--quick runs a fixed set of shapes; drop --${given.join(', --')}`);
    problems = QUICK_SHAPES;
  } else {
    const batches = intList('batch', v.batch, [1]);
    const heads = intList('heads', v.heads, [8]);
    const kvHeadsList = v['kv-heads'] === undefined ? null : intList('kv-heads', v['kv-heads'], []);
    const seqArg = v.seqlen ?? v.seqlens;
    const seqlens = intList('seqlen', seqArg, [512, 1024, 2048]);
    const seqlensK = v['seqlen-k'] === undefined ? null : intList('seqlen-k', v['seqlen-k'], []);
    const headDims = intList('head-dim', v['head-dim'], [64]);
    const dtypes = listOf('dtype', v.dtype, DTYPES, ['f32']);
    const causal = v.causal === true;
    problems = [];
    for (const dtype of dtypes)
      for (const headDim of headDims)
        for (const batch of batches)
          for (const h of heads)
            for (const hkv of kvHeadsList ?? [h]) {
              if (h % hkv !== 0) throw new UsageError(`--kv-heads ${hkv} does not divide --heads ${h}`);
              for (const nq of seqlens)
                for (const nk of seqlensK ?? [nq]) problems.push({ batch, heads: h, kvHeads: hkv, seqlenQ: nq, seqlenK: nk, headDim, causal, dtype });
            }
    for (const p of problems) if (p.headDim > 256) throw new UsageError(`--head-dim ${p.headDim} is above 256`);
  }

  const umfa = await binding();
  const ctx = new umfa.Context({ backend: backendName, numThreads: threads, deviceIndex });
  const results: BenchResult[] = [];
  let failed = 0;
  try {
    const backend = ctx.backend;
    // On a device the inputs are uploaded once and every timed call waits for its kernels.
    const onDevice = backend !== 'cpu';
    const steps = problems.length * (quick ? 1 : directions.length);
    const progress = new Progress(steps, io.err);
    for (const [i, p] of problems.entries()) {
      const inputs = makeInputs(umfa, p, 1234 + i);
      const owned: DeviceTensor[] = [];
      const own = <T extends DeviceTensor>(t: T): T => {
        owned.push(t);
        return t;
      };
      const device = onDevice ? { q: own(ctx.upload(inputs.q)), k: own(ctx.upload(inputs.k)), v: own(ctx.upload(inputs.v)) } : undefined;
      const fwdOptions = { context: ctx, causal: p.causal, returnLse: true } as const;
      try {
        let check: BenchResult['check'];
        if (quick) {
          progress.update(`checking ${p.dtype} ${shapeLabel(p)}${p.causal ? ' causal' : ''}`);
          const ref = referenceAttention(
            { batch: p.batch, seqlenQ: p.seqlenQ, seqlenK: p.seqlenK, heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim, causal: (p.causal ? 'bottom-right' : 'none') as CausalMode },
            inputs.qf,
            inputs.kf,
            inputs.vf,
          );
          let gotOut: ArrayBufferView;
          let gotLse: Float32Array;
          if (device) {
            const r = ctx.attention(device.q, device.k, device.v, fwdOptions);
            gotOut = own(r.out).download().data;
            gotLse = own(r.lse).download().data;
          } else {
            const r = ctx.attention(inputs.q, inputs.k, inputs.v, fwdOptions);
            gotOut = r.out.data;
            gotLse = r.lse.data;
          }
          const out = umfa.toFloat32Array(gotOut, p.dtype);
          const tol = QUICK_TOL[p.dtype];
          const c = compare(out, ref.out, tol.atol, tol.rtol);
          const lse = compare(gotLse, ref.lse, 1e-4, 1e-4);
          const passed = c.worstExcess <= 0 && lse.worstExcess <= 0;
          if (!passed) failed++;
          check = { reference: 'float64', maxAbsError: c.maxAbsError, atol: tol.atol, rtol: tol.rtol, passed };
        }
        for (const direction of quick ? (['fwd'] as Direction[]) : directions) {
          progress.update(`${direction} ${p.dtype} ${shapeLabel(p)}${p.causal ? ' causal' : ''}`);
          const times: number[] = [];
          const time = (call: () => unknown) => {
            for (let r = 0; r < warmup + reps; r++) {
              const t0 = performance.now();
              call();
              if (device) ctx.synchronize();
              const t1 = performance.now();
              if (r >= warmup) times.push(t1 - t0);
            }
          };
          const doutValues = () => randomValues(inputs.q.shape.reduce((a, b) => a * b, 1), rng(99 + i));
          const hostDout = () => umfa.tensor(p.dtype === 'f32' ? doutValues() : umfa.fromFloat32(doutValues(), p.dtype), inputs.q.shape, { dtype: p.dtype });
          if (device) {
            // Outputs allocated once: the timed calls write into them.
            const { q, k, v } = device;
            if (direction === 'fwd') {
              const out = own(ctx.zeros(p.dtype, q.shape));
              const lse = own(ctx.zeros('f32', [p.batch, p.heads, p.seqlenQ]));
              time(() => ctx.attention(q, k, v, { causal: p.causal, out, lse }));
            } else {
              const f = ctx.attention(q, k, v, fwdOptions);
              own(f.out);
              own(f.lse);
              const dout = own(ctx.upload(hostDout()));
              const grads = { dq: own(ctx.zeros(p.dtype, q.shape)), dk: own(ctx.zeros(p.dtype, k.shape)), dv: own(ctx.zeros(p.dtype, v.shape)) };
              time(() => ctx.attentionBackward(q, k, v, f.out, dout, f.lse, { causal: p.causal, ...grads }));
            }
          } else if (direction === 'fwd') {
            time(() => ctx.attention(inputs.q, inputs.k, inputs.v, fwdOptions));
          } else {
            const f = ctx.attention(inputs.q, inputs.k, inputs.v, fwdOptions);
            const dout = hostDout();
            time(() => ctx.attentionBackward(inputs.q, inputs.k, inputs.v, f.out, dout, f.lse, { context: ctx, causal: p.causal }));
          }
          const ms = summarize(times);
          const flops = attentionFlops(p, direction);
          const rate = flops / (ms.median / 1e3);
          results.push({
            direction,
            backend,
            dtype: p.dtype,
            batch: p.batch,
            heads: p.heads,
            kvHeads: p.kvHeads,
            seqlenQ: p.seqlenQ,
            seqlenK: p.seqlenK,
            headDim: p.headDim,
            causal: p.causal,
            flops,
            ms,
            reps,
            gflops: rate / 1e9,
            tflops: rate / 1e12,
            memoryBytes: tensorBytes(p, direction),
            ...(check ? { check } : {}),
          });
          progress.tick();
        }
      } finally {
        for (const t of owned) t.dispose();
      }
    }
    progress.end();

    const report: BenchReport = {
      schema: 'umfa-bench/1',
      meta: {
        date: new Date().toISOString(),
        command: ['umfa', ...io.argv].join(' '),
        quick,
        cli: cliVersion(),
        binding: await bindingVersion(),
        umfa: { version: umfa.version(), abi: umfa.abiVersion(), buildInfo: umfa.buildInfo() },
        library: umfa.libraryPath(),
        backend,
        threads: ctx.numThreads,
        ...(onDevice ? { device: deviceIndex } : {}),
        timing: onDevice ? 'call+synchronize' : 'call',
        reps,
        warmup,
        machine: machineInfo(),
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
      },
      results,
    };

    if (plotFile !== undefined) writeFileSync(plotFile, plot(report));
    if (v.json) {
      io.print(JSON.stringify(report, null, 2));
    } else {
      printTable(report, io);
      if (plotFile !== undefined) io.print(`plot written to ${plotFile}`);
    }
  } finally {
    ctx.dispose();
  }
  if (failed > 0) throw new FailureError(`${failed} shape(s) disagree with the float64 reference`);
  return Exit.OK;
}

const tolText = (x: number) => (x < 1e-3 ? x.toExponential(0) : String(x));

function printTable(report: BenchReport, io: Io): void {
  const s = io.style;
  const m = report.meta;
  const where = m.device !== undefined ? `device ${m.device}` : `${m.threads} thread${m.threads === 1 ? '' : 's'} · ${m.machine.cpu}`;
  io.print(`umfa ${m.umfa.version} · ${m.backend} backend · ${where}`);
  if (m.backend === 'metal' && m.umfa.buildInfo.includes('(simulated'))
    io.print('simulated Metal backend (Linux): the times below are the simulator\'s and say nothing about an Apple GPU');
  const timing = m.timing === 'call+synchronize' ? ' (each call and a synchronize)' : '';
  io.print(`median of ${m.reps} run${m.reps === 1 ? '' : 's'}${timing} after ${m.warmup} warm-up; FLOPs as FlashAttention counts them`);
  io.print();
  const quick = m.quick;
  const header = ['dir', 'dtype', 'B×N×H×D', 'causal', ...(quick ? ['max err', 'tolerance', 'check'] : []), 'ms', 'throughput', 'memory'];
  const rows = report.results.map((r) => {
    const n = r.seqlenK === r.seqlenQ ? `${r.seqlenQ}` : `${r.seqlenQ}/${r.seqlenK}`;
    const h = r.kvHeads === r.heads ? `${r.heads}` : `${r.heads}/${r.kvHeads}`;
    const checkCells = r.check
      ? [r.check.maxAbsError.toExponential(2), `${tolText(r.check.atol)} + ${tolText(r.check.rtol)}·|x|`, r.check.passed ? s.green('pass') : s.red('FAIL')]
      : [];
    return [r.direction, r.dtype, `${r.batch}×${n}×${h}×${r.headDim}`, r.causal ? 'yes' : 'no', ...checkCells, formatMs(r.ms.median), formatRate(r.gflops * 1e9), formatBytes(r.memoryBytes)];
  });
  const right = header.map((h) => (['ms', 'throughput', 'memory', 'max err'].includes(h) ? 'right' : 'left') as 'left' | 'right');
  io.print(renderTable(header, rows, right));
  if (quick) {
    const bad = report.results.filter((r) => r.check && !r.check.passed).length;
    io.print();
    io.print(bad === 0 ? s.green(`all ${report.results.length} shapes match the float64 reference`) : s.red(`${bad} of ${report.results.length} shapes do not match the float64 reference`));
  }
}

/** Throughput against sequence length, one line per configuration other than the seqlen. */
export function plot(report: BenchReport): string {
  const groups = new Map<string, Series>();
  const useTera = report.results.some((r) => r.tflops >= 1);
  for (const r of report.results) {
    const label = [
      r.direction,
      r.dtype,
      `B${r.batch}`,
      r.kvHeads === r.heads ? `H${r.heads}` : `H${r.heads}/${r.kvHeads}`,
      `D${r.headDim}`,
      r.causal ? 'causal' : '',
      r.seqlenK !== r.seqlenQ ? `Nk=${r.seqlenK}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    if (!groups.has(label)) groups.set(label, { label, points: [] });
    groups.get(label)!.points.push({ x: r.seqlenQ, y: useTera ? r.tflops : r.gflops });
  }
  const m = report.meta;
  const where = m.device !== undefined ? `device ${m.device}` : `${m.threads} thread${m.threads === 1 ? '' : 's'}`;
  return renderPlot([...groups.values()], {
    title: `umfa ${m.umfa.version} attention throughput (${m.backend}, ${where})`,
    xLabel: 'sequence length (queries)',
    yLabel: useTera ? 'TFLOP/s' : 'GFLOP/s',
  });
}
