// The one-minute example: save as attention.mjs, `npm install @umfa/koffi`, `node attention.mjs`.
import { attention, bshd, version } from '@umfa/koffi';

const shape = [1, 64, 4, 32]; // [batch, seqlen, heads, head_dim] (FlashAttention's BSHD)
const n = 64 * 4 * 32;
const q = bshd(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape);
const k = bshd(Float32Array.from({ length: n }, (_, i) => Math.cos(i)), shape);
const v = bshd(Float32Array.from({ length: n }, (_, i) => (i % 7) / 7), shape);

const { out, lse } = attention(q, k, v, { causal: true, returnLse: true });
console.log(`umfa ${version()}: out ${out.shape.join('×')}, lse ${lse.shape.join('×')}`);
// Causal: query 0 sees only key 0, so its output is v's first row.
console.log('out[0, 0, 0, :4] =', Array.from(out.data.subarray(0, 4), (x) => x.toFixed(4)).join(' '));
