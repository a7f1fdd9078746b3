// Half precision: f16 and bf16 tensors are Uint16Arrays of raw bits; helpers convert.
import { attention, bshd, f32ToBf16, toFloat32 } from '@umfa/koffi';

const shape = [1, 32, 2, 64];
const values = Float32Array.from({ length: 32 * 2 * 64 }, (_, i) => Math.sin(i));
const q = bshd(f32ToBf16(values), shape, 'bf16');

// The output has q's dtype unless you ask for another (accumulation is always f32).
const { out } = attention(q, q, q, { outDtype: 'f32' });
console.log('dtype', out.dtype, 'first values', Array.from(toFloat32(out).subarray(0, 3), (x) => x.toFixed(3)).join(' '));
