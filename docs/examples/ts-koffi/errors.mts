// Errors are UmfaError with the core's status and message; nothing is written on failure.
import { Status, UmfaError, attention, bshd } from '@umfa/koffi';

const q = bshd(new Float32Array(1 * 4 * 1 * 8), [1, 4, 1, 8]);
const k = bshd(new Float32Array(1 * 4 * 1 * 4), [1, 4, 1, 4]); // head_dim 4, q has 8
try {
  attention(q, k, k);
  throw new Error('expected a failure');
} catch (e) {
  if (!(e instanceof UmfaError)) throw e;
  console.log(`${e.code}: ${e.message}`);
  if (e.status !== Status.SHAPE_MISMATCH) throw e;
}
