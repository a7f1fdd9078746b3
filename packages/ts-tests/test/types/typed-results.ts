// Compiled (never run) by test/surface.test.ts under strict settings: results are typed from the
// arguments, so common code needs no casts, and what cannot be known stays wide. Every
// `@ts-expect-error` line must be an error, or the compilation fails ("unused directive").
import * as koffi from '@umfa/koffi';
import * as napi from '@umfa/napi';
import type { ForwardOptions, Tensor } from '@umfa/koffi';

declare const f32: Tensor<Float32Array>;
declare const bits: Tensor<Uint16Array>;
declare const anyTensor: Tensor;
declare const options: ForwardOptions;

for (const u of [koffi, napi]) {
  // Output data follows q's typed array, or outDtype, or the out tensor passed in.
  const a: Float32Array = u.attention(f32, f32, f32).out.data;
  const b: Uint16Array = u.attention(bits, bits, bits).out.data;
  const c: Float32Array = u.attention(bits, bits, bits, { outDtype: 'f32' }).out.data;
  const d: Uint16Array = u.attention(f32, f32, f32, { outDtype: 'bf16', causal: true }).out.data;
  const given = u.zeros('f32', [1, 4, 2, 8]);
  const e: Float32Array = u.attention(bits, bits, bits, { out: given }).out.data;

  // returnLse: true makes lse present; it is f32.
  const r = u.attention(f32, f32, f32, { causal: 'top-left', returnLse: true });
  const lse: Float32Array = r.lse.data;
  const g = u.attentionBackward(f32, bits, bits, r.out, r.out, r.lse);
  const dq: Float32Array = g.dq.data;
  const dk: Uint16Array = g.dk.data;
  const g2 = u.attentionBackward(bits, bits, bits, r.out, r.out, r.lse, { gradDtype: 'f32', dv: u.zeros('bf16', [1, 4, 2, 8]) });
  const dq2: Float32Array = g2.dq.data;
  const dv2: Uint16Array = g2.dv.data;

  // The same for the Promise variants and for contexts.
  void (async () => {
    const ra = await u.attentionAsync(f32, f32, f32, { returnLse: true });
    const la: Float32Array = ra.lse.data;
    const ga = await u.attentionBackwardAsync(f32, f32, f32, ra.out, ra.out, ra.lse);
    const gaq: Float32Array = ga.dq.data;
    using ctx = new u.Context({ numThreads: 1 });
    const rc: Float32Array = ctx.attention(f32, f32, f32).out.data;
    const rca: Uint16Array = (await ctx.attentionAsync(bits, bits, bits)).out.data;
    void [la, gaq, rc, rca];
  })();

  // The classic API: the output precision decides.
  const m = new u.MFAContext();
  const c1: Float32Array = u.flashAttentionForward(m, f32, f32, f32).data;
  const c2: Uint16Array = u.flashAttentionForward(m, f32, f32, f32, { outputPrecision: 'bf16' }).data;
  const c3: Float32Array = u.flashAttentionForward(m, bits, bits, bits, { inputPrecision: 'fp16', outputPrecision: 'fp32' }).data;

  // Device tensors: the same typing, through download().
  void (async () => {
    using ctx = new u.Context({ backend: 'auto' });
    using dq = ctx.upload(f32);
    using db = ctx.upload(bits);
    const dr = u.attention(dq, dq, dq, { causal: true, returnLse: true });
    const dout: Float32Array = dr.out.download().data;
    const dlse: Float32Array = dr.lse.download().data;
    const dbf: Float32Array = ctx.attention(db, db, db, { outDtype: 'f32' }).out.download().data;
    const dbits: Uint16Array = (await ctx.attentionAsync(db, db, db)).out.download().data;
    const dg = u.attentionBackward(dq, db, db, dr.out, dr.out, dr.lse);
    const dgq: Float32Array = dg.dq.download().data;
    const dgk: Uint16Array = dg.dk.download().data;
    const dga: Float32Array = (await u.attentionBackwardAsync(dq, dq, dq, dr.out, dr.out, dr.lse, { gradDtype: 'f32' })).dv.download().data;
    const z: Uint16Array = ctx.zeros('bf16', [2]).download().data;
    const given: Uint16Array = u.attention(dq, dq, dq, { out: ctx.zeros('f16', [1, 4, 2, 8]) }).out.download().data;
    const into: Int32Array = dq.download(new Int32Array(64)).data;
    // @ts-expect-error  without returnLse there may be no lse
    const w5: koffi.DeviceTensor = u.attention(dq, dq, dq).lse;
    // @ts-expect-error  a host tensor among device tensors
    u.attention(dq, f32, dq);
    // @ts-expect-error  a host output for a device call
    u.attention(dq, dq, dq, { out: f32 });
    // @ts-expect-error  a device tensor has no host data
    void dq.data;
    void [dout, dlse, dbf, dbits, dgq, dgk, dga, z, given, into, w5];
  })();

  // What the types cannot know stays wide.
  // @ts-expect-error  a Tensor of unknown data: its output is not known to be f32
  const w1: Float32Array = u.attention(anyTensor, anyTensor, anyTensor).out.data;
  // @ts-expect-error  options typed ForwardOptions may hold any outDtype
  const w2: Uint16Array = u.attention(bits, bits, bits, options).out.data;
  // @ts-expect-error  ... and may leave out returnLse
  const w3: Tensor = u.attention(f32, f32, f32, options).lse;
  // @ts-expect-error  without returnLse there may be no lse
  const w4: Tensor = u.attention(f32, f32, f32, { causal: true }).lse;

  // Options keep their checks.
  // @ts-expect-error  a misspelled option
  u.attention(f32, f32, f32, { casual: true });
  // @ts-expect-error  a misspelled option next to a correct one
  u.attention(f32, f32, f32, { causal: true, scael: 0.5 });
  // @ts-expect-error  a wrong value
  u.attention(f32, f32, f32, { causal: 'yes' });
  // @ts-expect-error  an unknown outDtype
  u.attention(f32, f32, f32, { outDtype: 'f64' });
  // @ts-expect-error  a misspelled classic option
  u.flashAttentionForward(m, f32, f32, f32, { softmaxScal: 1 });

  void [a, b, c, d, e, lse, dq, dk, dq2, dv2, c1, c2, c3, w1, w2, w3, w4];
}
