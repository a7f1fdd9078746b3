// The classic (Universal Metal Flash Attention) API in TypeScript.
import { MFAContext, flashAttentionForward, tensor, toFloat32 } from '@umfa/koffi';

const shape = [1, 16, 2, 32]; // [batch, seq, heads, head_dim]
const n = shape.reduce((a, b) => a * b, 1);
const q = tensor(new Float32Array(n), shape);
const v = tensor(Float32Array.from({ length: n }, (_, i) => i % 3), shape);

const ctx = new MFAContext();
const out = flashAttentionForward(ctx, q, q, v, { causal: true, inputPrecision: 'fp32', outputPrecision: 'fp32' });
console.log('out[0, 0, 0, :3] =', Array.from(toFloat32(out).subarray(0, 3)).join(' '));
ctx.dispose();
