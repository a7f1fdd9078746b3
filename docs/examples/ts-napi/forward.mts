// @umfa/napi has the same API as @umfa/koffi: only the import changes.
import { Context, attention, attentionAsync, bshd, toFloat32, version } from '@umfa/napi';

const shape = [2, 64, 4, 32] as const;
const size = shape.reduce((a: number, b: number) => a * b, 1);
const x = bshd(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.05)), shape);

console.log(`umfa ${version()} through the N-API addon`);
const sync = toFloat32(attention(x, x, x, { causal: 'top-left' }).out); // PyTorch's is_causal
const viaPromise = toFloat32((await attentionAsync(x, x, x, { causal: 'top-left' })).out);
const same = sync.every((value, i) => value === viaPromise[i]);
console.log('sync and async agree:', same);
if (!same) process.exit(1);

const ctx = new Context({ backend: 'cpu', numThreads: 1 });
console.log('context backend', ctx.backend, 'threads', ctx.numThreads);
ctx.dispose();
