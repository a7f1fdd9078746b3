// Device tensors: upload once, compute on the context's device, download the result. With
// backend 'auto' this runs on CUDA where a GPU is usable and on the CPU elsewhere (device
// tensors work on every backend; host typed arrays only on the CPU).
import { Context, attention, bshd } from '@umfa/koffi';

const shape = [1, 256, 4, 64] as const;
const size = shape.reduce((a: number, b: number) => a * b, 1);
const q = bshd(Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.01)), shape);
const k = bshd(Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.02)), shape);
const v = bshd(Float32Array.from({ length: size }, (_, i) => (i % 13) / 13), shape);

using ctx = new Context({ backend: 'auto' });
using dq = ctx.upload(q); // a DeviceTensor: GPU memory on CUDA
using dk = ctx.upload(k);
using dv = ctx.upload(v);

// Outputs of a call on device tensors are device tensors on the same context.
const { out, lse } = ctx.attention(dq, dk, dv, { causal: true, returnLse: true });
using o = out;
using l = lse;
const host = o.download(); // waits for the GPU, copies to a new Float32Array
console.log(`${ctx.backend}: out ${host.shape.join('×')}, lse ${l.shape.join('×')}`);

// The same numbers as the host call (on the CPU default context).
const reference = attention(q, k, v, { causal: true }).out.data;
const worst = host.data.reduce((m, x, i) => Math.max(m, Math.abs(x - reference[i]!)), 0);
console.log('max |device - host| =', worst.toExponential(1));
if (worst > 1e-3) throw new Error('device result differs');
