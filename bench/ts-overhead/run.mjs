#!/usr/bin/env node
// Per-call overhead of the TypeScript bindings on a tiny problem (B = H = 1, N = 1, D = 64, f32,
// one CPU thread), against umfa_attention_forward called directly from C, in one run.
//
//   node bench/ts-overhead/run.mjs [--batches 2000] [--per-batch 100] [--json FILE]
//   (the docs' table: --json bench/results/overhead.json)
//
// Needs the core built (dist/native) and the packages built (pnpm nx run-many -t build).
// Each figure is the median over batches of the per-call time (batch time / calls in it), after
// warm-up. Sync calls pass a preallocated output; async calls are awaited one after another
// (latency including the hop to a worker thread and back).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const batches = Number(opt('batches', 2000));
const perBatch = Number(opt('per-batch', 100));
const jsonOut = opt('json', undefined);
const native = join(root, 'dist', 'native', `${process.platform}-${process.arch}`);
process.env.UMFA_LIB_DIR ??= join(native, 'lib');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], p10: s[Math.floor(s.length / 10)], p90: s[Math.floor((s.length * 9) / 10)] };
}

// 1. C, directly.
const build = mkdtempSync(join(tmpdir(), 'umfa-overhead-'));
const exe = join(build, 'direct');
execFileSync('cc', ['-O2', '-std=c99', '-D_POSIX_C_SOURCE=199309L', '-I', join(native, 'include'), join(here, 'direct.c'), '-o', exe, '-L', join(native, 'lib'), '-lumfa', `-Wl,-rpath,${join(native, 'lib')}`]);
const c = JSON.parse(execFileSync(exe, [String(batches), String(perBatch)], { encoding: 'utf8' }));
const rows = [{ name: 'C ABI, direct', median: c.median_ns, p10: c.p10_ns, p90: c.p90_ns }];

// 2. The bindings.
async function measure(u, label) {
  const ctx = new u.Context({ backend: 'cpu', numThreads: 1 });
  const mk = (f) => u.bshd(Float32Array.from({ length: 64 }, (_, i) => f(i / 64)), [1, 1, 1, 64]);
  const q = mk((x) => x);
  const k = mk((x) => 1 - x);
  const v = mk((x) => x * 0.5);
  const out = u.zeros('f32', [1, 1, 1, 64]);
  const opts = { out };
  for (let i = 0; i < 20000; i++) ctx.attention(q, k, v, opts);
  const sync = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) ctx.attention(q, k, v, opts);
    sync.push(Number(process.hrtime.bigint() - t0) / perBatch);
  }
  const alloc = [];
  for (let b = 0; b < batches / 4; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) ctx.attention(q, k, v);
    alloc.push(Number(process.hrtime.bigint() - t0) / perBatch);
  }
  const asyncOpts = { out: u.zeros('f32', [1, 1, 1, 64]) };
  for (let i = 0; i < 2000; i++) await ctx.attentionAsync(q, k, v, asyncOpts);
  const asyncTimes = [];
  const asyncBatches = Math.max(20, Math.floor(batches / 10));
  for (let b = 0; b < asyncBatches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) await ctx.attentionAsync(q, k, v, asyncOpts);
    asyncTimes.push(Number(process.hrtime.bigint() - t0) / perBatch);
  }
  ctx.dispose();
  const s = median(sync);
  const a = median(asyncTimes);
  const al = median(alloc);
  rows.push({ name: `${label} sync`, ...s });
  rows.push({ name: `${label} async (awaited one by one)`, ...a });
  rows.push({ name: `${label} sync, allocating out`, ...al });
}

const koffi = await import(join(root, 'packages', 'ts-koffi', 'dist', 'index.js'));
await measure(koffi, '@umfa/koffi');
const napi = await import(join(root, 'packages', 'ts-napi', 'dist', 'index.js'));
await measure(napi, '@umfa/napi');

const base = rows[0].median;
const us = (ns) => (ns / 1000).toFixed(2);
console.log(`per-call time, B=H=1 N=1 D=64 f32, 1 CPU thread; median of ${batches} batches x ${perBatch} calls (async: ${Math.max(20, Math.floor(batches / 10))} batches)`);
console.log(`node ${process.version}, ${process.platform}-${process.arch}`);
console.log('');
console.log('| path | median µs | p10 µs | p90 µs | overhead vs C µs |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.name} | ${us(r.median)} | ${us(r.p10)} | ${us(r.p90)} | ${r === rows[0] ? '—' : us(r.median - base)} |`);
}
const bar = rows.filter((r) => / sync$/.test(r.name)).map((r) => ({ name: r.name, overhead_us: (r.median - base) / 1000 }));
const ok = bar.every((b) => b.overhead_us <= 2);
console.log('');
console.log(`bar (koffi sync and napi sync within 2 µs of C): ${ok ? 'met' : 'NOT met'} (${bar.map((b) => `${b.name} +${b.overhead_us.toFixed(2)} µs`).join(', ')})`);
if (jsonOut) {
  const cpus = os.cpus();
  const result = {
    meta: {
      date: new Date().toISOString().slice(0, 10),
      machine: { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, platform: process.platform, arch: process.arch },
      command: 'node bench/ts-overhead/run.mjs --json bench/results/overhead.json',
      node: process.version,
      problem: 'B=H=1, N=1, D=64, f32, CPU backend, 1 thread',
      method: `median over ${batches} batches of ${perBatch} calls (async: ${Math.max(20, Math.floor(batches / 10))} batches, each call awaited)`,
      bar: 'koffi sync and napi sync within 2 us of the direct C call',
      bar_met: ok,
    },
    rows: rows.map((r) => ({
      path: r.name,
      median_us: +(r.median / 1000).toFixed(3),
      p10_us: +(r.p10 / 1000).toFixed(3),
      p90_us: +(r.p90 / 1000).toFixed(3),
      overhead_vs_c_us: r === rows[0] ? 0 : +((r.median - base) / 1000).toFixed(3),
    })),
  };
  writeFileSync(jsonOut, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${jsonOut}`);
}
