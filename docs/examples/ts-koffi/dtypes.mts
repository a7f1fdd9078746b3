// Half precision: f16 and bf16 tensors hold raw bits in a Uint16Array; helpers convert.
import { attention, bshd, f32ToBf16, toFloat32 } from '@umfa/koffi';

const shape = [1, 32, 2, 64] as const;
const values = Float32Array.from({ length: 32 * 2 * 64 }, (_, i) => Math.sin(i));
const q = bshd(f32ToBf16(values), shape, 'bf16');

// The output has q's dtype unless you ask for another one (accumulation is always f32).
const { out } = attention(q, q, q, { outDtype: 'f32' });
console.log(out.dtype, Array.from(toFloat32(out).subarray(0, 3), (x) => x.toFixed(3)).join(' '));
