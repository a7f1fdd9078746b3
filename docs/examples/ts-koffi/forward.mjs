// Forward attention with @umfa/koffi: BSHD tensors over typed arrays, causal, with the LSE.
import { Context, attention, bshd, version, backends } from '@umfa/koffi';

const [B, N, H, D] = [1, 128, 4, 64];
const fill = (n, f) => Float32Array.from({ length: n }, (_, i) => f(i));
const q = bshd(fill(B * N * H * D, (i) => Math.sin(i * 0.01)), [B, N, H, D]);
const k = bshd(fill(B * N * H * D, (i) => Math.cos(i * 0.02)), [B, N, H, D]);
const v = bshd(fill(B * N * H * D, (i) => (i % 17) / 17), [B, N, H, D]);

console.log(`umfa ${version()}; backends:`, backends().map((b) => `${b.name}=${b.available}`).join(' '));

// The default context (all CPU threads)...
const { out, lse } = attention(q, k, v, { causal: true, returnLse: true });
console.log('out shape', out.shape, 'lse shape', lse.shape);

// ...or one you configure and dispose (`using ctx = new Context(...)` where supported).
const ctx = new Context({ backend: 'cpu', numThreads: 2 });
try {
  const again = ctx.attention(q, k, v, { causal: true });
  // Causal: query 0 sees only key 0, so its output row is v's first row.
  const first = Array.from(again.out.data.subarray(0, 4), (x) => x.toFixed(4));
  console.log('out[0, 0, 0, :4] =', first.join(' '));
  if (Math.abs(again.out.data[1] - v.data[1]) > 1e-6) throw new Error('unexpected output');
} finally {
  ctx.dispose();
}
