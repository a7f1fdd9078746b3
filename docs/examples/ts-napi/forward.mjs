// @umfa/napi has the same API as @umfa/koffi: only the import changes.
import { Context, attention, attentionAsync, bshd, version } from '@umfa/napi';

const shape = [2, 64, 4, 32];
const size = shape.reduce((a, b) => a * b, 1);
const x = bshd(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.05)), shape);

console.log(`umfa ${version()} through the N-API addon`);
const sync = attention(x, x, x, { causal: 'top-left' }); // PyTorch's is_causal
const viaPromise = await attentionAsync(x, x, x, { causal: 'top-left' });
const same = sync.out.data.every((value, i) => value === viaPromise.out.data[i]);
console.log('sync and async agree:', same);
if (!same) process.exit(1);

const ctx = new Context({ backend: 'cpu', numThreads: 1 });
console.log('context backend', ctx.backend, 'threads', ctx.numThreads);
ctx.dispose();
