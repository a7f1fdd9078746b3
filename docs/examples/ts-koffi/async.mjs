// attentionAsync runs on a worker thread and returns a Promise; many calls may be in flight.
import { attentionAsync, bshd } from '@umfa/koffi';

const shape = [1, 64, 2, 32];
const size = shape.reduce((a, b) => a * b, 1);
const jobs = Array.from({ length: 8 }, (_, j) => {
  const x = Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.1 + j));
  const t = bshd(x, shape);
  return attentionAsync(t, t, t);
});
const results = await Promise.all(jobs);
console.log(`${results.length} results, each of shape ${results[0].out.shape.join('×')}`);
