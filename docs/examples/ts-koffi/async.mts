// attentionAsync runs on a worker thread and returns a Promise; many calls may be in flight.
import { attentionAsync, bshd } from '@umfa/koffi';

const shape = [1, 64, 2, 32] as const;
const size = shape.reduce((a: number, b: number) => a * b, 1);
const results = await Promise.all(
  Array.from({ length: 8 }, (_, j) => {
    const t = bshd(Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.1 + j)), shape);
    return attentionAsync(t, t, t);
  }),
);
console.log(`${results.length} results of shape ${results[0]?.out.shape.join('×')}`);
