// The classic (Universal Metal Flash Attention) API in TypeScript.
import { MFAContext, flashAttentionForward, tensor } from '@umfa/koffi';

const [batch, seq, heads, dim] = [1, 16, 2, 32];
const n = batch * seq * heads * dim;
const q = tensor(new Float32Array(n), [batch, seq, heads, dim]);
const v = tensor(Float32Array.from({ length: n }, (_, i) => i % 3), [batch, seq, heads, dim]);

const ctx = new MFAContext();
const out = flashAttentionForward(ctx, q, q, v, { causal: true, inputPrecision: 'fp32', outputPrecision: 'fp32' });
console.log('out[0, 0, 0, :3] =', Array.from(out.data.subarray(0, 3)).join(' '));
ctx.dispose();
