// More of the contract both bindings run (vitest projects `koffi` and `napi`, beside
// bindings.test.ts): the classic API's precisions, the classic context's finalizer, and f16
// tensors held in a Float16Array.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const packageName = `@umfa/${which}`;
const u: Binding = (await import(`${packageName}/internal`)) as Binding;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe(`${packageName}: classic API precisions`, () => {
  const [B, Nq, Nk, H, D] = [2, 5, 7, 2, 16];
  const qv = rand(B * Nq * H * D, 1);
  const kv = rand(B * Nk * H * D, 2);
  const vv = rand(B * Nk * H * D, 3);

  // The umfa API on the same (rounded) values is the reference: top-left causal, f32 output.
  function reference(dtype: 'f32' | 'f16' | 'bf16', causal: boolean): Float32Array {
    const t = (x: Float32Array, n: number) => u.bshd(u.fromFloat32(x, dtype), [B, n, H, D], dtype);
    const r = u.attention(t(qv, Nq), t(kv, Nk), t(vv, Nk), { causal: causal ? 'top-left' : false, outDtype: 'f32' });
    return r.out.data as Float32Array;
  }

  const cases = [
    { input: 'fp16', dtype: 'f16', output: undefined, outClass: Uint16Array, tol: 2e-3 },
    { input: 'bf16', dtype: 'bf16', output: 'fp32', outClass: Float32Array, tol: 1e-6 },
    { input: 'fp32', dtype: 'f32', output: 'bf16', outClass: Uint16Array, tol: 8e-3 },
    { input: 'fp32', dtype: 'f32', output: 'fp16', outClass: Uint16Array, tol: 1e-3 },
  ] as const;

  for (const c of cases) {
    it(`input ${c.input}, output ${c.output ?? 'default'} (intermediate fp32), causal`, () => {
      const t = (x: Float32Array, n: number) => u.bshd(u.fromFloat32(x, c.dtype), [B, n, H, D], c.dtype);
      using ctx = new u.MFAContext();
      const out = u.flashAttentionForward(ctx, t(qv, Nq), t(kv, Nk), t(vv, Nk), {
        causal: true,
        inputPrecision: c.input,
        intermediatePrecision: 'fp32',
        ...(c.output ? { outputPrecision: c.output } : {}),
      });
      const outDtype = c.output === undefined ? c.dtype : c.output === 'fp32' ? 'f32' : c.output === 'fp16' ? 'f16' : 'bf16';
      expect(out.dtype).toBe(outDtype);
      expect(out.shape).toEqual([B, Nq, H, D]);
      expect(out.data).toBeInstanceOf(c.outClass);
      expect(maxDiff(u.toFloat32(out), reference(c.dtype, true))).toBeLessThanOrEqual(c.tol);
    });
  }

  it('writes into a given out array and takes softmaxScale', () => {
    using ctx = new u.MFAContext();
    const q = u.bshd(qv, [B, Nq, H, D]);
    const k = u.bshd(kv, [B, Nk, H, D]);
    const v = u.bshd(vv, [B, Nk, H, D]);
    const given = new Float32Array(B * Nq * H * D).fill(NaN);
    const r = u.flashAttentionForward(ctx, q, k, v, { softmaxScale: 0.3, out: given });
    expect(r.data).toBe(given);
    const modern = u.attention(q, k, v, { scale: 0.3 });
    expect(maxDiff(given, modern.out.data as Float32Array)).toBeLessThan(1e-6);
  });

  it('frees classic contexts the program forgot, via the finalizer', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with --expose-gc').toBeTypeOf('function');
    const driver = u._driver();
    const original = driver.mfaDestroyContext.bind(driver);
    let destroyed = 0;
    driver.mfaDestroyContext = (h: bigint) => {
      destroyed++;
      original(h);
    };
    try {
      (() => {
        for (let i = 0; i < 10; i++) new u.MFAContext();
      })();
      for (let i = 0; i < 50 && destroyed < 10; i++) {
        gc?.();
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(destroyed).toBeGreaterThanOrEqual(10);
    } finally {
      driver.mfaDestroyContext = original;
    }
  });
});

// Node 20 and 22 have no Float16Array; where the runtime has one the bindings take it for f16.
// On a runtime without it, a child process installs a minimal stand-in (a Uint16Array subclass
// that reads and writes numbers through binary16, as the real one does) before loading the
// binding, so the code paths for Float16Array data run here too.
describe(`${packageName}: f16 data in a Float16Array`, () => {
  const script = (entry: string) => `
    if (typeof globalThis.Float16Array !== 'function') {
      const toBits = (x) => { const f = new Float32Array([x]); const b = new Uint32Array(f.buffer)[0];
        const s = (b >>> 16) & 0x8000, e = ((b >>> 23) & 0xff) - 112, m = b & 0x7fffff;
        if (e <= 0) return s; if (e >= 31) return s | 0x7c00;
        let h = s | (e << 10) | (m >>> 13); const r = m & 0x1fff; if (r > 0x1000 || (r === 0x1000 && (h & 1))) h++; return h; };
      const toNum = (h) => { const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 31, m = h & 1023;
        return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15); };
      class Float16Array extends Uint16Array {
        static from(values) { const a = new Float16Array(values.length); for (let i = 0; i < values.length; i++) a.set1(i, values[i]); return a; }
        set1(i, x) { Uint16Array.prototype.fill.call(this, toBits(x), i, i + 1); }
        get1(i) { return toNum(Uint16Array.prototype.at.call(this, i)); }
        *[Symbol.iterator]() { for (let i = 0; i < this.length; i++) yield this.get1(i); }
      }
      globalThis.Float16Array = Float16Array;
      globalThis.__standIn = true;
    }
    const u = await import(${JSON.stringify(entry)});
    const n = 1 * 4 * 2 * 8, vals = Array.from({ length: n }, (_, i) => Math.sin(i * 0.7));
    const h = Float16Array.from(vals);
    const t = u.bshd(h, [1, 4, 2, 8]);
    const r = u.attention(t, t, t, { causal: true });
    const bits = u.f32ToF16(vals);
    const ref = u.attention(u.bshd(bits, [1, 4, 2, 8], 'f16'), u.bshd(bits, [1, 4, 2, 8], 'f16'), u.bshd(bits, [1, 4, 2, 8], 'f16'), { causal: true });
    const a = u.toFloat32(r.out), b = u.toFloat32(ref.out);
    let diff = 0; for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    const f = u.toFloat32Array(h, 'f16');
    let conv = 0; for (let i = 0; i < n; i++) conv = Math.max(conv, Math.abs(f[i] - u.f16ToF32(bits)[i]));
    console.log(JSON.stringify({ standIn: !!globalThis.__standIn, inferred: t.dtype, outIsF16Array: r.out.data instanceof Float16Array,
      outDtype: r.out.dtype, diff, conv, hasFloat16Array: u.hasFloat16Array }));`;

  it('infers f16, computes like the Uint16Array bits, and allocates the output as a Float16Array', () => {
    const entry = fileURLToPath(import.meta.resolve(packageName));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(entry)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
    expect(res).toMatchObject({ inferred: 'f16', outIsF16Array: true, outDtype: 'f16', diff: 0, conv: 0, hasFloat16Array: true });
    console.log(`${packageName}: Float16Array ${res['standIn'] ? 'stand-in (this Node has none)' : 'of the runtime'}`);
  });
});

export type { Tensor };
