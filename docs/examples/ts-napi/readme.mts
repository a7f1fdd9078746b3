import { attention, attentionAsync, attentionBackward, bshd, bhsd, Context, f32ToBf16 } from '@umfa/napi';

// q: [batch, seqlen_q, heads_q, head_dim] (FlashAttention's BSHD); k, v: [batch, seqlen_k, heads_kv, head_dim]
const q = bshd(Float32Array.from({ length: 2 * 128 * 8 * 64 }, (_, i) => Math.sin(i)), [2, 128, 8, 64]);
const k = bshd(Float32Array.from({ length: 2 * 128 * 2 * 64 }, (_, i) => Math.cos(i)), [2, 128, 2, 64]); // GQA: 8 query heads share 2 kv heads
const { out, lse } = attention(q, k, k, { causal: true, returnLse: true });
const { dq } = attentionBackward(q, k, k, out, out, lse); // gradients for dout = out

// PyTorch's [batch, heads, seqlen, head_dim] memory, without a copy:
const qt = bhsd(new Float32Array(2 * 8 * 128 * 64), [2, 8, 128, 64]);

// bf16 / f16 inputs are Uint16Array bit patterns (or Node's Float16Array):
const qb = bshd(f32ToBf16(q.data), [2, 128, 8, 64], 'bf16');

// Off the event loop:
const r = await attentionAsync(q, k, k, { window: [256, 0], softcap: 30 });

// Explicit context (threads, backend); freed by dispose(), `using`, or a finalizer:
using ctx = new Context({ backend: 'cpu', numThreads: 4 });
ctx.attention(qt, k, k, { scale: 0.125 });
ctx.attention(qb, qb, qb, { outDtype: 'f32' });
console.log(out.shape, lse.shape, dq.shape, r.out.data.length); // out.data is a Float32Array
