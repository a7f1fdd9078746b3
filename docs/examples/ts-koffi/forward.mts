// Forward attention with @umfa/koffi: BSHD tensors over typed arrays, causal, with the LSE.
import { Context, attention, backends, bshd, toFloat32, version } from '@umfa/koffi';

const shape = [1, 128, 4, 64] as const; // [batch, seqlen, heads, head_dim]
const size = shape.reduce((a: number, b: number) => a * b, 1);
const fill = (f: (i: number) => number) => Float32Array.from({ length: size }, (_, i) => f(i));
const q = bshd(fill((i) => Math.sin(i * 0.01)), shape);
const k = bshd(fill((i) => Math.cos(i * 0.02)), shape);
const v = bshd(fill((i) => (i % 17) / 17), shape);

console.log(`umfa ${version()};`, backends().map((b) => `${b.name}: ${b.available}`).join(', '));

// On the default context (all CPU threads)...
const { out, lse } = attention(q, k, v, { causal: true, returnLse: true });
console.log('out', out.shape, 'lse', lse?.shape);

// ...or on one you configure and dispose.
const ctx = new Context({ backend: 'cpu', numThreads: 2 });
try {
  const again = toFloat32(ctx.attention(q, k, v, { causal: true }).out);
  // Causal: query 0 sees only key 0, so its output row is v's first row.
  console.log('out[0, 0, 0, :4] =', Array.from(again.subarray(0, 4), (x) => x.toFixed(4)).join(' '));
  if (again.subarray(0, 64).some((x, d) => Math.abs(x - v.data[d]!) > 1e-6)) throw new Error('unexpected output');
} finally {
  ctx.dispose();
}
